# smtp-sink: added by the issue that writes it.

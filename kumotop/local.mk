# kumotop: added by the issue that writes it.

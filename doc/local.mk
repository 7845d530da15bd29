# doc: added by the issue that writes it.
dist_man_MANS += doc/kumoctl.8
EXTRA_DIST += doc/control-protocol.md
dist_man_MANS += doc/smtp-sink.1

# doc/: man pages (sections 1, 5, 8) and the control protocol reference.
dist_man_MANS += doc/kumod.8 doc/kumod.conf.5
dist_man_MANS += doc/kumoctl.8
dist_man_MANS += doc/kumotop.1
dist_man_MANS += doc/smtp-sink.1
dist_man_MANS += doc/tls-probe.1
EXTRA_DIST += doc/control-protocol.md

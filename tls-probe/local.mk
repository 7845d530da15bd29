# tls-probe: added by the issue that writes it.

# kumoctl: the readline admin shell of kumod's control socket.
sbin_PROGRAMS += kumoctl/kumoctl
kumoctl_kumoctl_SOURCES = kumoctl/main.c kumoctl/commands.c kumoctl/kumoctl.h
kumoctl_kumoctl_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(READLINE_CFLAGS)
kumoctl_kumoctl_LDADD = $(KUMO_LIBS) $(READLINE_LIBS)

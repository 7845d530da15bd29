# kumotop: the ncurses live view of kumod's queues (a watch-stream client).
bin_PROGRAMS += kumotop/kumotop
kumotop_kumotop_SOURCES = kumotop/main.c kumotop/snap.c kumotop/fastsnap.c kumotop/view.c kumotop/kumotop.h
kumotop_kumotop_CFLAGS = $(AM_CFLAGS) $(NCURSES_CFLAGS) $(JANSSON_CFLAGS)
kumotop_kumotop_LDADD = $(KUMO_LIBS) $(NCURSES_LIBS)

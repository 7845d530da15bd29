#!/bin/bash
# kumoctl-shell.sh: the interactive shell under tmux (send-keys, capture-pane)
# against tests/lab/ctl-echo: prompt, tab completion of commands, options and
# live names fetched from the server, history recall and the history file,
# help, Ctrl-C stopping a stream, quit. ctl-echo's canned names make every
# completion case reproducible; kumoctl-live.sh runs a session against a real
# kumod (live queue names, history, help, Ctrl-C of an injection).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

K=$top_builddir/kumoctl/kumoctl
ECHO=$top_builddir/tests/lab/ctl-echo
[ -x "$K" ] && [ -x "$ECHO" ] || skip_all "kumoctl or tests/lab/ctl-echo not built"
command -v tmux >/dev/null || skip_all "tmux not installed"

mkwork >/dev/null # not in a subshell: lib.sh must see T_WORK to clean it up
work=$T_WORK
sock=$work/control.sock
start_bg echo "$ECHO" "$sock"
wait_for 10 test -S "$sock" || { fail "ctl-echo did not start"; finish; }

TM=kumo-kumoctl-$$
trap 'rc=$?; tmux -L "$TM" kill-server 2>/dev/null; reap_orphans "$K"; t_cleanup $rc' EXIT
tmux -L "$TM" -f /dev/null new-session -d -x 160 -y 50 \
	"env HOME=$work KUMOD_CONTROL=$sock TERM=xterm INPUTRC=/dev/null $K; echo SHELL-ENDED; sleep 30"

TMUX_CAPTURE="-p -J -S -200"
. "$top_srcdir/tests/integration/tmux.sh"

check "prompt names the socket" wait_screen "^kumoctl $sock> \$"

# A command name: "queue-su" + Tab
keys 'queue-su' Tab
check "command completion" wait_screen "> queue-summary \$"
keys Enter
check "command ran" wait_screen '^  ip-2->mx.example.test +ip-2 '

# An option: "suspend --ten" + Tab
clear_screen
keys 'suspend --ten' Tab
check "option completion" wait_screen "> suspend --tenant \$"
keys C-u

# A live ready-queue name from the server: "inspect-ready-q ip-2" + Tab
keys 'inspect-ready-q ip-2' Tab
check "live name completion" wait_screen "> inspect-ready-q ip-2->mx.example.test \$"
keys Enter
check "completed name accepted" wait_screen '^name: +ip-2->mx.example.test$'

# A live scheduled-queue name, two candidates listed on double Tab
clear_screen
keys 'inspect-sched-q ' Tab Tab
check "candidates listed" wait_screen 'bar.test +example.test +foo.test'
keys C-u

# help
clear_screen
keys 'help' Enter
check "help output" wait_screen '^  resolve-egress-path +the merged egress path config'

# History: Up recalls the last command; the file keeps it
clear_screen
keys C-p
check "history recall" wait_screen "> help\$"
keys C-u
check "history file written" grep -qx 'inspect-ready-q ip-2->mx.example.test' "$work/.kumoctl_history"

# A stream, stopped by Ctrl-C, and back at the prompt
clear_screen
keys 'watch' Enter
check "watch streams" wait_screen '^TIME +RECEIVED'
keys C-c
sleep 0.3
keys 'metrics' Enter
check "prompt back after Ctrl-C" wait_screen '^kumo_delivered_total 127$'

# An error keeps the shell
keys 'inspect-ready-q nope' Enter
check "error shown, shell alive" wait_screen 'unknown ready queue "nope"'

# Ctrl-C at the prompt drops the half-typed line and keeps the shell
clear_screen
keys 'reload --bogus' C-c
sleep 0.3
keys 'set-log-filter notice' Enter
check "Ctrl-C at the prompt keeps the shell" wait_screen '^filter: notice$'
check "the dropped line did not run" bash -c "! tmux -L '$TM' capture-pane -p | grep -q 'unknown option --bogus'"

keys 'quit' Enter
check "quit leaves" wait_screen '^SHELL-ENDED$'

# A second shell reads the history file back
tmux -L "$TM" new-window "env HOME=$work KUMOD_CONTROL=$sock TERM=xterm INPUTRC=/dev/null $K; sleep 30"
sleep 0.3
keys C-p
check "history survives restart" wait_screen '> quit$'
keys C-u 'quit' Enter
finish

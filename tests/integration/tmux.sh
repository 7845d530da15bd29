# tmux.sh: sourced by the scripts that drive kumoctl or kumotop on a tmux
# screen (send-keys / capture-pane). Needs TM, the tmux server's socket
# name (tmux -L); TMUX_CAPTURE holds capture-pane's options (default -p:
# the visible screen; -p -J -S -300 for a shell's scrollback too).
screen() { tmux -L "$TM" capture-pane ${TMUX_CAPTURE:--p}; }
keys() { tmux -L "$TM" send-keys "$@"; }
# wait_screen REGEX [SECONDS]: bounded wait until the pane shows REGEX
wait_screen() {
	local i
	for ((i = 0; i < ${2:-5} * 10; i++)); do
		screen | grep -Eq -- "$1" && return 0
		sleep 0.1
	done
	echo "--- screen (wanted /$1/):" >&2
	screen >&2
	return 1
}
# gone_screen REGEX [SECONDS]: bounded wait until the pane no longer shows REGEX
gone_screen() {
	local i
	for ((i = 0; i < ${2:-5} * 10; i++)); do
		screen | grep -Eq -- "$1" || return 0
		sleep 0.1
	done
	echo "--- screen (still /$1/):" >&2
	screen >&2
	return 1
}
clear_screen() { keys C-l; tmux -L "$TM" clear-history; }

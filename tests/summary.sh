#!/usr/bin/env bash
# summary.sh [BUILDDIR]: add up what the suites of the last `make check` in
# BUILDDIR reported. CUnit suites print a "Run Summary" table; integration
# scripts print "N passed, N failed". Prints one line per kind and a closing
# "N passed, N failed" line; exits 1 if anything failed or nothing ran.
# Each failed check is printed first with the lines that follow it in its
# log (the output the script attached), so a CI log names what broke.
set -u
dir=${1:-.}
awk '
FNR == 1 { kind = (FILENAME ~ /tests\/unit\//) ? "unit" : "integ"; shown = 0 }
kind == "unit" && $1 == "asserts" { ua += $4; uf += $5; us++ }
kind == "unit" && $1 == "tests"   { ut += $3; utf += $5 }
kind == "integ" && /^FAIL - / { shown = 12; printf "%s: %s\n", FILENAME, $0; next }
kind == "integ" && shown > 0 && !/^(ok|FAIL) - / { shown--; print "    " $0 }
kind == "integ" && /^ok - / { shown = 0 }
kind == "unit" && (/had failures:/ || /^ +[0-9]+\. .*:[0-9]+ +- /) { printf "%s: %s\n", FILENAME, $0 }
kind == "integ" && /^[0-9]+ passed, [0-9]+ failed/ { ip += $1; ifl += $3; is++ }
END {
	printf "unit: %d suites, %d tests, %d assertions passed, %d failed\n", us, ut, ua, uf + utf
	printf "integration: %d scripts, %d checks passed, %d failed\n", is, ip, ifl
	printf "%d passed, %d failed\n", ua + ip, uf + utf + ifl
	exit (uf + utf + ifl > 0 || us == 0) ? 1 : 0
}' $(find "$dir/tests" -name '*.log' -path '*/tests/unit/*' 2>/dev/null) \
   $(find "$dir/tests" -name '*.log' -path '*/tests/integration/*' 2>/dev/null) /dev/null

# tests/lib.sh: what the shell tests share. Source it after making "$tmp" (a scratch folder):
# run a command into $tmp/out, $tmp/err and $tmp/rc, check conditions, and finish with the
# closing "N passed, N failed" line and the matching exit status.
passed=0 failed=0

# check NAME COMMAND...: a passing COMMAND counts the check; a failing one prints what ran.
check() {
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
    echo "  stdout: $(head -c 600 "$tmp/out" 2>/dev/null)"
    echo "  stderr: $(tail -c 600 "$tmp/err" 2>/dev/null)"
  fi
}
run() { "$@" >"$tmp/out" 2>"$tmp/err"; echo $? >"$tmp/rc"; }
rc_is() { [ "$(cat "$tmp/rc")" = "$1" ]; }
out_has() { grep -qE -- "$1" "$tmp/out"; }
err_has() { grep -qE -- "$1" "$tmp/err"; }
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

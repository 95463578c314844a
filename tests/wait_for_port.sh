# Sourced by the shell tests that start a server in the background and read its port from
# a log line.
#
# wait_for_port PID OUT ERR SED_EXPR: polls OUT for up to 30 s for the port SED_EXPR
# (a `sed -n` program that prints it) extracts; sets PORT. A missing OUT (the background
# job has not opened it yet) counts as "not yet". Prints ERR and exits 1 when the process
# ends first or no port appears.
wait_for_port() {
  local pid="$1" out="$2" err="$3" expr="$4"
  PORT=""
  for _ in $(seq 1 300); do
    PORT=$(sed -n "$expr" "$out" 2>/dev/null || true)
    [ -n "$PORT" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$err"; echo "server exited before listening"; exit 1; }
    sleep 0.1
  done
  cat "$out" "$err"
  echo "no listening line in $out after 30 s"
  exit 1
}

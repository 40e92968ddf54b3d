#!/usr/bin/env bash
# Start/stop a throwaway clickhouse-server (Debian's 18.16 from apt) for tests and CI.
#   .ci/clickhouse.sh start DIR PORT   # config, data and logs all under DIR; 127.0.0.1 only
#   .ci/clickhouse.sh stop DIR [PORT]
# Self-contained: never reads /etc/clickhouse-server or writes /var/lib. Re-starting with the same
# DIR keeps the data (the store outage test relies on that). HTTP port = PORT+1.
set -euo pipefail

cmd=${1:?usage: clickhouse.sh start|stop DIR PORT}
dir=${2:?usage: clickhouse.sh start|stop DIR PORT}
port=${3:-}
server_bin=${CLICKHOUSE_SERVER_BIN:-$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pidfile="$dir/clickhouse.pid"

write_config() {
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/log"
  cat > "$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$dir/log/server.log</log>
        <errorlog>$dir/log/server.err.log</errorlog>
        <size>10M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$port</tcp_port>
    <http_port>$((port + 1))</http_port>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <max_concurrent_queries>50</max_concurrent_queries>
</yandex>
XML
  cat > "$dir/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
XML
}

running() {  # a zombie (killed, not yet reaped by a container's init) counts as stopped
  [[ -f "$pidfile" ]] || return 1
  local pid; pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null || return 1
  ! grep -qs '^State:[[:space:]]*Z' "/proc/$pid/status"
}

case "$cmd" in
  start)
    [[ -n "$port" ]] || { echo "start needs a PORT" >&2; exit 64; }
    if running; then echo "clickhouse already running (pid $(cat "$pidfile"))"; exit 0; fi
    write_config
    # run in the background ourselves (no --daemon: it would want /var/run); logs under DIR
    nohup "$server_bin" --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 &
    echo $! > "$pidfile"
    for _ in $(seq 1 150); do
      if ! running; then
        echo "clickhouse-server exited; last log lines:" >&2
        tail -n 30 "$dir/log/stdout.log" "$dir/log/server.err.log" >&2 2>/dev/null || true
        exit 1
      fi
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "clickhouse-server ready on 127.0.0.1:$port (pid $(cat "$pidfile"))"
        exit 0
      fi
      sleep 0.2
    done
    echo "clickhouse-server did not open 127.0.0.1:$port within 30 s" >&2
    exit 1
    ;;
  stop)
    if ! running; then rm -f "$pidfile"; exit 0; fi
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do running || break; sleep 0.1; done
    if running; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
    rm -f "$pidfile"
    ;;
  *) echo "unknown command: $cmd (start|stop)" >&2; exit 64 ;;
esac

#!/usr/bin/env bash
# bench/run.sh: slipway run against the physical floor of each workload,
# whole processes as a user times them, interleaved (floor, slipway,
# floor, ...) so that both see the same machine, median of RUNS runs.
#
#   bench/run.sh            # every workload; RUNS=7 by default
#   RUNS=9 bench/run.sh local
#
# Needs: go, bash 5, /usr/bin/time (Debian's time), and for the container
# workloads a Docker engine (the offline test image is built here).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-7}
WHICH=${1:-all}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go build -o "$work/slipway" ./cmd/slipway
slipway="$work/slipway"
export TMPDIR=${TMPDIR:-/tmp}

# median of the numbers on stdin.
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# timeit CMD...: milliseconds the command took, its output discarded,
# read off bash's own clock (EPOCHREALTIME) so that the timing spawns
# nothing of its own.
timeit() {
	local t0 t1
	t0=$EPOCHREALTIME
	"$@" >/dev/null 2>&1
	t1=$EPOCHREALTIME
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", (b-a)*1000}'
}

# peak_kb CMD...: the command's peak resident memory in KB.
peak_kb() {
	/usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null 2>&1 || true
	tail -1 "$work/rss"
}

# config NAME JOBS SHAPE EXECUTOR: a config of JOBS `true` jobs, a chain
# or parallel, on the host (machine) or in the test image (docker).
config() {
	local f="$work/$1.yml" n=$2 shape=$3 exe=$4
	{
		echo "version: 2.1"
		echo "jobs:"
		echo "  t:"
		if [ "$exe" = docker ]; then
			echo "    docker: [{image: slipway-test-busybox:latest}]"
		else
			echo "    machine: true"
		fi
		echo "    steps: [{run: \"true\"}]"
		echo "workflows:"
		echo "  w:"
		echo "    jobs:"
		for i in $(seq 1 "$n"); do
			if [ "$shape" = chain ] && [ "$i" -gt 1 ]; then
				echo "      - t: {name: t$i, requires: [t$((i - 1))]}"
			else
				echo "      - t: {name: t$i}"
			fi
		done
	} >"$f"
	echo "$f"
}

floor_local() { for _ in $(seq 1 "$1"); do bash -eo pipefail -c true; done; }
floor_docker() { for _ in $(seq 1 "$1"); do docker run --rm slipway-test-busybox:latest true; done; }
floor_local_parallel() { # n shells, 4 at a time
	local n=$1
	seq 1 "$n" | xargs -P 4 -I{} bash -eo pipefail -c true
}

# row NAME FLOOR-DESC CONFIG EXECUTOR FLOORFN JOBS: times and prints one row.
row() {
	local name=$1 desc=$2 cfg=$3 exe=$4 floorfn=$5 n=$6
	local fl=() sw=() rss
	local args=(run "$cfg" --branch main --allow-machine --executor "$exe" --repo .)
	# A warm-up of each, untimed.
	"$floorfn" "$n" >/dev/null 2>&1
	"$slipway" "${args[@]}" >/dev/null 2>&1 || { echo "slipway failed on $name" >&2; "$slipway" "${args[@]}" >&2; exit 1; }
	for _ in $(seq 1 "$RUNS"); do
		fl+=("$(timeit "$floorfn" "$n")")
		sw+=("$(timeit "$slipway" "${args[@]}")")
	done
	rss=$(peak_kb "$slipway" "${args[@]}")
	local f s
	f=$(printf '%s\n' "${fl[@]}" | median)
	s=$(printf '%s\n' "${sw[@]}" | median)
	awk -v name="$name" -v desc="$desc" -v f="$f" -v s="$s" -v n="$n" -v rss="$rss" 'BEGIN {
		extra = (n > 1) ? sprintf("%.1f ms/job over the floor", (s - f) / n) : ""
		printf "| %s | %s | %.1f ms | %.1f ms | %.2fx | %s | %.1f MB |\n", name, desc, f, s, s / f, extra, rss / 1024
	}'
}

echo "slipway run against the floor, medians of $RUNS interleaved runs ($(nproc) cores, $(date -u +%F))"
echo
echo "| workload | floor | floor time | slipway | ratio | per job | slipway peak RSS |"
echo "|---|---|---|---|---|---|---|"
if [ "$WHICH" = all ] || [ "$WHICH" = local ]; then
	row "1 local job \`true\`" "\`bash -eo pipefail -c true\`" "$(config one 1 chain local)" local floor_local 1
	row "100-job chain, local" "100 × the above" "$(config chain100 100 chain local)" local floor_local 100
	row "100 parallel jobs, 4 at a time, local" "100 × the above, 4 at a time" "$(config par100 100 parallel local)" local floor_local_parallel 100
fi
if [ "$WHICH" = all ] || [ "$WHICH" = docker ]; then
	if docker info >/dev/null 2>&1; then
		go run ./executors/docker/dockertest/testimage >/dev/null
		row "1 container job" "\`docker run --rm IMG true\`" "$(config cone 1 chain docker)" docker floor_docker 1
		row "10-job container chain" "10 × \`docker run --rm\`" "$(config cchain10 10 chain docker)" docker floor_docker 10
	else
		echo "(no Docker engine answers: container workloads skipped)"
	fi
fi

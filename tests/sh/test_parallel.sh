#!/usr/bin/env bash
# Many agents under one tbwrap: 8 started at once by a script (libc, writev, stdio and raw writers;
# two commands), one of them starting a nested agent from inside (so the nested one runs under the
# outer one's seccomp filter and registers instead of installing its own). Every agent is metered
# exactly once, under its own command; the sums per command and overall are exact; the nested
# agent is marked nested; every stdout is intact.
source "$(dirname "$0")/libtest.sh"
setup
require_files "$TBWRAP" "$LIBTBWRAP" "$FAKE_AGENT"

AGENTS=$(agent_dir)
C=$AGENTS/claude

# name command mode extra fixture-stdout fixture-transcript tokens
agents=(
	"a1 /test libc - stdout.text.txt transcript.text.jsonl 17000"
	"a2 /test raw - stdout.stream-json.jsonl transcript.stream-json.jsonl 17000"
	"a3 /test stdio - stdout.json.json transcript.json.jsonl 17000"
	"a4 /test writev spawn stdout.stream-json-max-budget.jsonl transcript.stream-json-max-budget.jsonl 8500"
	"a5 /other raw - stdout.stream-json-partial.jsonl transcript.stream-json-partial.jsonl 17000"
	"a6 /other libc - stdout.stream-json-max-budget.jsonl transcript.stream-json-max-budget.jsonl 8500"
	"a7 /other stdio - stdout.text.txt transcript.text.jsonl 17000"
	"a8 /other raw chunk stdout.json.json transcript.json.jsonl 17000"
)
# The nested agent: raw writes (notified to the outer agent's listener), its own stdout file.
INNER="'$C' -p '/other nested' --mode raw --delay-ms 5 --output-format stream-json --stdout '$FIX/stdout.stream-json.jsonl' \
--transcript '$(transcript_for /other transcript.stream-json.jsonl)' >'$T/inner.out'"

{
	for row in "${agents[@]}"; do
		read -r name cmd mode extra so tr _ <<<"$row"
		opts="--mode $mode --delay-ms 5"
		[[ $extra == chunk ]] && opts+=" --chunk 7"
		[[ $extra == spawn ]] && opts+=" --spawn \"$INNER\""
		echo "( '$C' -p '$cmd $name' $opts --output-format stream-json --stdout '$FIX/$so' --transcript '$(transcript_for "$cmd" "$tr")' >'$T/$name.out'; echo $name=\$? >>'$T/codes' ) &"
	done
	echo wait
} >"$T/par.sh"

run "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- bash "$T/par.sh"
assert_eq "$status" 0 "the script under tbwrap exits 0"
assert_eq "$(sort "$T/codes" | tr '\n' ' ')" "a1=0 a2=0 a3=0 a4=0 a5=0 a6=0 a7=0 a8=0 " "every agent exited 0"

for row in "${agents[@]}"; do
	read -r name cmd mode extra so tr _ <<<"$row"
	assert_file_eq "$T/$name.out" "$FIX/$so" "$name ($cmd, $mode${extra/-/}): stdout intact"
done
assert_file_eq "$T/inner.out" "$FIX/stdout.stream-json.jsonl" "nested agent: stdout intact"
assert_eq "$(transcripts | wc -l | tr -d ' ')" 9 "nine transcripts written"

# Per agent: command, total, nested flag, status; sorted, since pids are not known in advance.
got=$(python3 - "$T/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for a in sorted(r["agents"], key=lambda a: (a["command"], a["usage"]["total"], a["nested"])):
    u = a["usage"]
    print(a["command"], u["input"], u["output"], u["cache_creation"], u["cache_read"], u["total"],
          "nested" if a["nested"] else "top", a["status"])
PY
)
assert_eq "$got" "/other 2000 100 400 6000 8500 top exited
/other 4000 200 800 12000 17000 top exited
/other 4000 200 800 12000 17000 top exited
/other 4000 200 800 12000 17000 top exited
/other 4000 200 800 12000 17000 nested exited
/test 2000 100 400 6000 8500 top exited
/test 4000 200 800 12000 17000 top exited
/test 4000 200 800 12000 17000 top exited
/test 4000 200 800 12000 17000 top exited" \
	"each of the 9 agents metered once, exactly, under its command; only the inner one nested"

assert_eq "$(json_get "$T/r.json" overall.agents):$(json_get "$T/r.json" overall.used.total):$(json_get "$T/r.json" overall.reserved)" \
	"9:136000:0" "overall: 9 agents, 136,000 tokens, nothing left reserved"
assert_eq "$(json_get "$T/r.json" overall.used)" \
	'{"cache_creation":6400,"cache_read":96000,"input":32000,"output":1600,"total":136000,"usd":0.288}' \
	"overall: the four counts are exact (7 full runs and 2 half runs), and their price at claude-opus-4-8's rates (32000 x 5 + 1600 x 25 + 6400 x 6.25 + 96000 x 0.50 micro-USD)"
got=$(python3 - "$T/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
# The table's order is the order agents first registered: sorted here, parallel launches race.
for c in sorted(r["commands"], key=lambda c: c["name"]):
    print(c["name"], c["agents"], c["used"]["total"], c["reserved"])
PY
)
assert_eq "$got" "/other 5 76500 0
/test 4 59500 0" "per command: /test 4 agents 59,500; /other 5 agents 76,500"

# ---- more agents at once than a small connection table would hold ----
# Every running agent keeps its connection to the supervisor. 80 agents that each wait, inside
# their run, until all 80 have started can only finish if all 80 are registered at the same time.
N=80
cat >"$T/barrier.sh" <<EOF
touch "$T/started.\$PPID"
for i in \$(seq 1 200); do
	[ "\$(ls "$T" | grep -c '^started\.')" -ge $N ] && { echo ok >>"$T/barrier.log"; exit 0; }
	sleep 0.05
done
echo timeout >>"$T/barrier.log"
EOF
{
	echo "for i in \$(seq 1 $N); do"
	echo "  '$C' -p \"/many \$i\" --mode raw --spawn 'sh $T/barrier.sh' --output-format stream-json --stdout '$FIX/stdout.text.txt' --transcript '$FIX/transcript.text.jsonl' >/dev/null &"
	echo "done"
	echo "wait"
} >"$T/many.sh"
run "$TBWRAP" --disable-budget-visuals --report-json "$T/many.json" -- bash "$T/many.sh"
assert_eq "$status" 0 "$N agents at once: the script exits 0"
assert_eq "$(sort "$T/barrier.log" 2>/dev/null | uniq -c | awk '{print $2 "x" $1}')" "okx$N" \
	"$N agents at once: all were registered and running together"
assert_eq "$(json_get "$T/many.json" overall.agents):$(json_get "$T/many.json" overall.used.total)" \
	"$N:$((N * 17000))" "$N agents at once: each metered exactly ($((N * 17000)) tokens)"

# ---- one stdout file shared by several agents ----
# A script's log that its agents all write to: each agent's lines land between the others'. Each
# agent's own stream must be metered whole (no gap where the others wrote), with the shared file
# offset (">") and with O_APPEND (">>"), through the supervisor (raw) and in-process (libc).
for redir in ">" ">>"; do
	for mode in raw libc; do
		rm -f "$T/shared.out"
		{
			echo "("
			for k in 1 2 3; do
				echo "  '$C' -p '/shared $k' --mode $mode --delay-ms 10 --output-format stream-json --stdout '$FIX/stdout.stream-json.jsonl' &"
			done
			echo "  wait ) $redir '$T/shared.out'"
		} >"$T/shared.sh"
		run "$TBWRAP" --disable-budget-visuals --report-json "$T/shared.json" -- bash "$T/shared.sh"
		got=$(python3 - "$T/shared.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(" ".join(f'{a["usage"]["total"]}/{a["anomalies"]["gap"]}' for a in r["agents"]))
PY
)
		assert_eq "$got" "17000/0 17000/0 17000/0" \
			"shared stdout ($redir, $mode): each of 3 agents metered whole, no gap"
		assert_eq "$(wc -l <"$T/shared.out" | tr -d ' ')" 36 "shared stdout ($redir, $mode): every line written"
	done
done

done_testing

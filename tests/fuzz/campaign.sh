#!/usr/bin/env bash
# Long campaign on a many-core machine without Bazel (how tests/fuzz/README.md's table
# was made): all targets at once, SECS seconds each, libFuzzer -fork workers per target
# (16 in all). Bundle first, from the repository root on the build machine:
#   mkdir -p out/fuzz_dist/{bin,lib}; cp <fuzz bazel-bin>/tests/fuzz/*_fuzzer out/fuzz_dist/bin/
#   ldd out/fuzz_dist/bin/* | awk '/=>/ {print $3}' | grep -E 'absl|pcre2|utf8proc' \
#     | sort -u | xargs -I{} cp -L {} out/fuzz_dist/lib/
#   cp tests/fuzz/campaign.sh out/fuzz_dist/
# then on the other machine, in a copy of the repository: OUT=/some/dir out/fuzz_dist/campaign.sh 300
# Optional out/fuzz_dist/prev/<target>/ corpora (an earlier run's) are read too.
# Results: $OUT/results.tgz (logs, crash/oom/timeout artifacts).
SECS=${1:-300}
D=$(cd "$(dirname "$0")" && pwd)
export LD_LIBRARY_PATH=$D/lib
export MOE_SOURCE_DIR=$PWD
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run() {  # name max_len dict fork
  local name=$1 max_len=$2 dict=$3 fork=$4 o=$OUT/$1
  mkdir -p $o/corpus $o/artifacts
  local args=(-max_len=$max_len -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048
              -print_final_stats=1 -max_total_time=$SECS -artifact_prefix=$o/artifacts/)
  [ "$dict" != - ] && { cat tests/fuzz/dict/json.dict tests/fuzz/dict/$dict > $o/merged.dict; args+=(-dict=$o/merged.dict); }
  [ "$fork" -gt 1 ] && args+=(-fork=$fork -ignore_crashes=0)
  local start=$(date +%s)
  local prev=; [ -d $D/prev/$name ] && prev=$D/prev/$name
  $D/bin/$name "${args[@]}" $o/corpus tests/fuzz/corpus/$name $prev > $o/log 2>&1
  echo "$name rc=$? secs=$(( $(date +%s) - start ))" > $o/result
}
run safetensors_header_fuzzer 8192 safetensors.dict 2 &
run model_config_fuzzer 4096 model_config.dict 2 &
run tokenizer_fuzzer 1024 - 4 &
run tokenizer_from_json_fuzzer 65536 tokenizer_json.dict 3 &
run openai_request_fuzzer 4096 openai.dict 2 &
run chat_template_parse_fuzzer 8192 jinja.dict 2 &
run chat_template_render_fuzzer 4096 chat_messages.dict 1 &
wait
cat $OUT/*/result
for f in $OUT/*/log; do echo "== $f"; grep -E '^#[0-9]+' $f | sort -t'#' -k2 -n | tail -1; grep -E 'stat::number_of_executed_units|ERROR:|SUMMARY|INVARIANT|runtime error|crash|Killed' $f | head -8; done
cd $OUT && tar czf results.tgz */log */result */artifacts && for d in */; do rm -rf $d; done

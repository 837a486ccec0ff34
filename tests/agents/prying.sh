#!/bin/sh
# A prying agent for tests/e2e/test_agent_secrets.py: it looks for Baton credentials everywhere an
# agent can look and writes what it found to a proof (prying-report.txt).
#
#   sh prying.sh OUT PYTHON
#
# OUT: a directory outside the job's work dir (the runner deletes that), where the git hooks it
# installs write the environment they see. PYTHON: the interpreter whose sys.path it searches.
#
# Report lines: "<section>\t<where>\t<match>", sections: env (its own environment), proc (every
# readable /proc/*/environ and /proc/*/cmdline), hooks (what its hooks saw when it committed),
# workcopy, home, tmp, workdir, path (every directory on PYTHONPATH and sys.path), plus "canary"
# and "stat" lines that show the search works and what it covered.

set -u
OUT="$1"
PY="${2:-python3}"
PATTERN='b[tl]_[A-Za-z0-9_-]{20,}'
PROOFS="$BATON_PROOFS_DIR"
REPORT="$OUT/prying-report.txt"   # outside what it searches; copied to its proofs at the end
: > "$REPORT"

note() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$REPORT"; }

# Positive controls: a token-shaped canary in a file of its HOME and in the environ of a process.
CANARY="bt_canary$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
note canary value "$CANARY"
echo "$CANARY" > "$HOME/canary.txt"
env PRY_CANARY="$CANARY" sleep 60 &
CANARY_PID=$!

# --- its own environment
env > "$OUT/agent-env.txt"
env | grep -Eo "$PATTERN" | while read -r m; do note env self "$m"; done

# --- every readable /proc/*/environ and /proc/*/cmdline
readable=0
for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do
  content=$(tr '\0' '\n' < "$f" 2>/dev/null) || continue
  readable=$((readable + 1))
  printf '%s\n' "$content" | grep -Eo "$PATTERN" | while read -r m; do note proc "$f" "$m"; done
done
note stat proc-files-read "$readable"
kill "$CANARY_PID" 2>/dev/null

# --- git hooks in its working copy: they record the environment they see. Its own commit runs
# them (a positive control: AGENT_SELF=1 in what they saw); the runner's commit must not.
cd "$BATON_REPO_DIR" || exit 3
mkdir -p "$OUT/hooks-path"
for hook in pre-commit prepare-commit-msg commit-msg post-commit pre-push reference-transaction \
            post-index-change post-checkout post-merge pre-auto-gc; do
  printf '#!/bin/sh\nenv > "%s/hook-%s.$$"\n' "$OUT" "$hook" > ".git/hooks/$hook"
  chmod +x ".git/hooks/$hook"
  cp ".git/hooks/$hook" "$OUT/hooks-path/$hook"
done
export AGENT_SELF=1   # every git of its own says so to its hooks; the runner's git has its own environment
echo "pried" > pried.txt
git add pried.txt
git commit -q -m "the prying agent's own commit" || note stat own-commit failed
for f in "$OUT"/hook-*; do
  [ -f "$f" ] || continue
  grep -Eo "$PATTERN" "$f" | while read -r m; do note hooks "$f" "$m"; done
done
note stat hook-records "$(ls "$OUT" | grep -c '^hook-')"
# ... and for the runner's commit, every other way to get a hook run: core.hooksPath and an
# fsmonitor command in .git/config, core.hooksPath in ~/.gitconfig.
git config core.hooksPath "$OUT/hooks-path"
printf '#!/bin/sh\nenv > "%s/hook-fsmonitor.$$"\nexit 1\n' "$OUT" > "$OUT/fsmonitor.sh"
chmod +x "$OUT/fsmonitor.sh"
git config core.fsmonitor "$OUT/fsmonitor.sh"
printf '[core]\n\thooksPath = %s/hooks-path\n' "$OUT" > "$HOME/.gitconfig"
echo "left for the runner to commit" > for-the-runner.txt

# --- files: its working copy, HOME, TMPDIR, the whole work dir, PYTHONPATH and sys.path
search() {  # section directory
  [ -d "$2" ] || return 0
  note stat searched "$1:$2"
  grep -rIEo "$PATTERN" "$2" 2>/dev/null | while IFS= read -r line; do
    note "$1" "${line%%:*}" "${line##*:}"
  done
}
search workcopy "$BATON_REPO_DIR"
search home "$HOME"
search tmp "${TMPDIR:-/tmp/none}"
search workdir "$BATON_WORKDIR"
for d in $(printf '%s' "${PYTHONPATH:-}" | tr ':' ' '); do search path "$d"; done
for d in $("$PY" -c 'import sys; print("\n".join(p for p in sys.path if p))'); do search path "$d"; done

note stat workdir "$BATON_WORKDIR"
cp "$REPORT" "$PROOFS/prying-report.txt"
printf '{"summary": "pried everywhere", "confidence": "high"}\n' > "$PROOFS/handoff.json"
echo "prying agent: $(wc -l < "$REPORT") report lines"
exit 0

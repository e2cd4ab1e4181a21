#!/usr/bin/env bash
# Parse --options for Kaldi-style scripts. Source it, do not run it:   . utils/parse_options.sh
#
# A script declares its options as shell variables with defaults, e.g. `nj=4; cmd=run.pl`, then
# sources this file. `--foo-bar VALUE` and `--foo-bar=VALUE` set foo_bar, but only when the script
# already defines foo_bar (else "invalid option", exit 1). A variable whose default is true/false
# only takes true or false. `--config FILE` sources FILE first (command-line options override it;
# several --config are sourced left to right). `--help`/`-h` prints $help_message and exits 0.
# Parsing stops at the first argument not starting with "--" (or after a lone "--"); the options
# are shifted away, leaving the positional arguments in "$@". An empty --cmd is an error.

[ -z "${config+x}" ] && config=

# Config files first, so that the command-line options override what they set.
_po_args=("$@")
for ((_po_i = 0; _po_i < ${#_po_args[@]}; _po_i++)); do
  case "${_po_args[_po_i]}" in
    --) break ;;
    --config=*) _po_cfg="${_po_args[_po_i]#--config=}" ;;
    --config) _po_cfg="${_po_args[_po_i + 1]-}"; _po_i=$((_po_i + 1)) ;;
    --*=*) continue ;;
    --*) _po_i=$((_po_i + 1)); continue ;;
    *) break ;;
  esac
  if [ -z "$_po_cfg" ] || [ ! -r "$_po_cfg" ]; then
    echo "$0: cannot read config file '$_po_cfg' given to --config" 1>&2
    exit 1
  fi
  . "$_po_cfg" || { echo "$0: error in config file $_po_cfg" 1>&2; exit 1; }
  _po_cfg=
done

while [ $# -gt 0 ]; do
  case "$1" in
    --help | -h)
      if [ -z "${help_message:-}" ]; then echo "No help found." 1>&2
      else printf "%b\n" "$help_message" 1>&2; fi
      exit 0 ;;
    --) shift; break ;;
    --*=*) _po_name="${1%%=*}"; _po_value="${1#*=}"; _po_n=1 ;;
    --*)
      if [ $# -lt 2 ]; then echo "$0: option $1 needs a value" 1>&2; exit 1; fi
      _po_name="$1"; _po_value="$2"; _po_n=2 ;;
    *) break ;;
  esac
  _po_name="${_po_name#--}"
  _po_name="${_po_name//-/_}"
  if [ "$_po_name" = config ]; then shift $_po_n; continue; fi   # already sourced above
  if [[ ! "$_po_name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!_po_name+x}" ]; then
    echo "$0: invalid option ${1%%=*}" 1>&2
    exit 1
  fi
  if [[ "${!_po_name}" == true || "${!_po_name}" == false ]] && \
     [[ "$_po_value" != true && "$_po_value" != false ]]; then
    echo "$0: expected \"true\" or \"false\": ${1%%=*} $_po_value" 1>&2
    exit 1
  fi
  printf -v "$_po_name" '%s' "$_po_value"
  shift $_po_n
done

if [ -n "${cmd+x}" ] && [ -z "$cmd" ]; then
  echo "$0: empty argument to --cmd option" 1>&2
  exit 1
fi
unset _po_args _po_i _po_cfg _po_name _po_value _po_n
true

# The half of the file API that runs inside a Bash kernel (bash_kernel): the calls of
# broker/files/protocol.py.
#
# broker/files/bash_helper.py has the kernel's shell run this script with a bash of its
# own, so the user's variables, options and functions are untouched. It comes after a
# preamble that sets KB_BEGIN, KB_END, TEMP_MARK and KB_DATA (the file holding an upload
# chunk's bytes) and before the call itself: `kb_answer FUNCTION ARG...`. The answer goes
# to stdout between a line $KB_BEGIN and a line $KB_END (broker/kernel_calls.py), in lines
# of at most 4000 characters: bash_kernel publishes each line as a stream message and
# reads its terminal 2000 bytes at a time, searching the line read so far for its prompt
# each time, so longer lines cost more than they save.
#
# Needs GNU coreutils (realpath -m, stat -c, dd with byte offsets, base64 -w) and GNU
# find (-printf), as in Debian and Ubuntu images (not BusyBox). Runs with LC_ALL=C: names
# are bytes, sorted by byte (for UTF-8 names, the order of their code points).

unset -f $(compgen -A function) 2>/dev/null # functions the user's shell exported
export LC_ALL=C
kb_root=$(pwd -P)

kb_str() { # $1 as a JSON string, in kb_s
  local s=$1 code char
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  if [[ $s == *[$'\x01'-$'\x1f\x7f']* ]]; then
    for code in {1..31} 127; do
      printf -v char "\\x$(printf %02x "$code")"
      s=${s//"$char"/$(printf '\\u%04x' "$code")}
    done
  fi
  kb_s="\"$s\""
}

kb_emit() { # a whole answer
  printf '%s\n%s\n%s\n' "$KB_BEGIN" "$1" "$KB_END"
}

kb_refuse() { # reason [path]: the call is refused
  kb_str "${2-}"
  kb_emit "{\"error\":{\"reason\":\"$1\",\"path\":$kb_s}}"
  exit 0
}

kb_os() { # errno path [detail]: a filesystem error
  local path detail
  kb_str "$2"
  path=$kb_s
  kb_str "${3-}"
  detail=$kb_s
  kb_emit "{\"error\":{\"reason\":\"os\",\"errno\":\"$1\",\"path\":$path,\"detail\":$detail}}"
  exit 0
}

kb_fail() { # path message: a command failed; its message names strerror's words
  local errno=""
  case $2 in
  *"No such file or directory"*) errno=ENOENT ;;
  *"Permission denied"*) errno=EACCES ;;
  *"Operation not permitted"*) errno=EPERM ;;
  *"Read-only file system"*) errno=EROFS ;;
  *"No space left on device"*) errno=ENOSPC ;;
  *"Disk quota exceeded"*) errno=EDQUOT ;;
  *"Directory not empty"*) errno=ENOTEMPTY ;;
  *"Too many levels of symbolic links"*) errno=ELOOP ;;
  esac
  kb_os "$errno" "$1" "$2"
}

kb_inside() { # whether the real path $1 is in the working directory
  [[ $kb_root == / || $1 == "$kb_root" || $1 == "$kb_root"/* ]]
}

kb_resolve() { # rel: its real path, every symbolic link followed, in kb_real
  if [[ $1 == /* || /$1/ == */../* ]]; then kb_refuse bad_path "$1"; fi
  kb_real=$(realpath -m -- "$kb_root${1:+/$1}" 2>&1) || kb_fail "$1" "$kb_real"
  kb_inside "$kb_real" || kb_refuse outside "$1"
}

kb_parent() { # rel of the directory holding rel $1
  if [[ $1 == */* ]]; then kb_p=${1%/*}; else kb_p=""; fi
}

kb_model() { # rel type size mtime (as find -L prints them): a model, in kb_s
  local size=$3 type=file
  if [[ $2 == d ]]; then type=directory size=null; fi
  kb_str "${1##*/}"
  local name=$kb_s
  kb_str "$1"
  kb_s="{\"name\":$name,\"path\":$kb_s,\"type\":\"$type\",\"size\":$size,\"mtime\":$4}"
}

kb_stat() { # rel real: the model of real, in kb_s
  local info
  info=$(find -L "$2" -maxdepth 0 -printf '%y/%s/%T@' 2>&1) || kb_fail "$1" "$info"
  IFS=/ read -r type size mtime <<<"$info"
  kb_model "$1" "$type" "$size" "$mtime"
}

kb_open() { # rel real: real opened as fd 3, its identity in kb_ident
  [[ -r $2 ]] || kb_os EACCES "$1"
  exec 3<"$2" || kb_os EACCES "$1"
  kb_ident=$(stat -L -c '%d:%i:%s:%.9Y' /dev/fd/3)
}

kb_data() { # the JSON prefix, then the output of a command as base64, then the suffix
  printf '%s\n%s"data":"' "$KB_BEGIN" "$1"
  "${@:2}" | base64 -w 4000
  printf '"}\n%s\n' "$KB_END"
}

kb_listing() { # rel real max: a directory's model and entries
  local rel=$1 n=0 truncated=false sep="" name type size mtime
  kb_stat "$rel" "$2"
  printf '%s\n%s,"entries":[\n' "$KB_BEGIN" "${kb_s%\}}"
  while IFS=/ read -r -d '' name type size mtime; do
    [[ $name == *"$TEMP_MARK"* ]] && continue
    if ((n >= $3)); then
      truncated=true
      break
    fi
    kb_model "${rel:+$rel/}$name" "$type" "$size" "$mtime"
    printf '%s%s\n' "$sep" "$kb_s"
    sep=,
    n=$((n + 1))
  done < <(find -L "$2" -mindepth 1 -maxdepth 1 -printf '%f/%y/%s/%T@\0' 2>/dev/null |
    sort -z -t/ -k1,1)
  printf '],"truncated":%s}\n%s\n' "$truncated" "$KB_END"
}

kb_describe() { # rel max_entries first_bytes
  kb_resolve "$1"
  local real=$kb_real
  [[ -e $real ]] || kb_os ENOENT "$1"
  if [[ -d $real ]]; then
    kb_listing "$1" "$real" "$2"
    return
  fi
  [[ -f $real ]] || kb_refuse not_regular "$1"
  kb_open "$1" "$real"
  IFS=: read -r _ _ size mtime <<<"$kb_ident"
  kb_model "$1" f "$size" "$mtime"
  kb_data "${kb_s%\}},\"ident\":\"$kb_ident\"," head -c "$3" <&3
}

kb_read() { # rel offset length ident
  kb_resolve "$1"
  kb_open "$1" "$kb_real"
  [[ $kb_ident == "$4" ]] || kb_refuse changed "$1"
  kb_data "{" dd bs=65536 skip="$2" count="$3" iflag=skip_bytes,count_bytes status=none <&3
}

kb_temp() { # real transfer: where the upload is written until it is complete
  kb_t="${1%/*}/.${1##*/}$TEMP_MARK$2"
}

kb_check_temp() { # temp
  local real
  real=$(realpath -m -- "$1")
  if [[ ${1##*/} != *"$TEMP_MARK"* ]] || ! kb_inside "$real"; then kb_refuse not_upload; fi
}

kb_begin_upload() { # rel transfer
  [[ -n $1 ]] || kb_refuse no_name
  kb_resolve "$1"
  [[ -d $kb_real ]] && kb_refuse is_directory "$1"
  local err
  kb_parent "$1"
  err=$(mkdir -p -- "${kb_real%/*}/" 2>&1) || kb_fail "$kb_p" "$err"
  kb_temp "$kb_real" "$2"
  err=$( (set -o noclobber && : >"$kb_t") 2>&1) || kb_fail "$1" "$err"
  kb_str "$kb_t"
  kb_emit "{\"temp\":$kb_s}"
}

kb_write_chunk() { # temp offset; the bytes are in $KB_DATA
  kb_check_temp "$1"
  [[ -e $1 ]] || kb_os ENOENT "${1##*/}"
  local err size
  err=$(dd if="$KB_DATA" of="$1" bs=1M seek="$2" oflag=seek_bytes conv=notrunc \
    status=none 2>&1) || kb_fail "${1##*/}" "$err"
  size=$(stat -c %s "$KB_DATA")
  kb_emit "{\"written\":$(($2 + size))}"
}

kb_commit_upload() { # temp rel
  kb_check_temp "$1"
  kb_resolve "$2"
  if [[ -d $kb_real ]]; then
    rm -f -- "$1"
    kb_refuse became_directory "$2"
  fi
  local created=true err
  [[ -e $kb_real ]] && created=false
  err=$(mv -fT -- "$1" "$kb_real" 2>&1) || kb_fail "$2" "$err"
  kb_stat "$2" "$kb_real"
  kb_emit "${kb_s%\}},\"created\":$created}"
}

kb_abort_upload() { # rel transfer
  kb_resolve "$1"
  kb_temp "$kb_real" "$2"
  rm -f -- "$kb_t"
  kb_emit "{}"
}

kb_delete() { # rel
  [[ -n $1 ]] || kb_refuse root
  kb_parent "$1"
  kb_resolve "$kb_p"
  local target="$kb_real/${1##*/}" err
  if [[ -d $target && ! -L $target ]]; then
    err=$(rmdir -- "$target" 2>&1) || kb_fail "$1" "$err"
  elif [[ -e $target || -L $target ]]; then
    err=$(rm -f -- "$target" 2>&1) || kb_fail "$1" "$err"
  else
    kb_os ENOENT "$1"
  fi
  kb_emit "{}"
}

kb_answer() { # function arg...
  local call=$1
  shift
  case $call in
  describe | read | begin_upload | write_chunk | commit_upload | abort_upload | delete)
    "kb_$call" "$@"
    ;;
  *) kb_refuse internal ;;
  esac
}

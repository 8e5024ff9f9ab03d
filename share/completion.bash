# The walk over a husk command line, after _husk_data (what `husk __doc bash` writes from husk's
# own tables: verbs, subcommands, their flags and what their first argument names).
# shellcheck shell=bash

# Candidates for the word under the cursor: _husk_reply CUR COMPGEN-ARGS...
_husk_reply()
{
    mapfile -t COMPREPLY < <(compgen "${@:2}" -- "$1")
}

# The functions of the daemon, nothing when it does not answer:
# _husk_functions HUSK N GLOBAL-FLAGS(N words)... FN-FLAGS...
_husk_functions()
{
    local husk=$1 n=$2 out re='"name": *"([^"]*)"'
    shift 2
    out=$(timeout 2 "$husk" "${@:1:n}" fn ls --format json "${@:n+1}" 2>/dev/null) || return 0
    while [[ $out =~ $re ]]; do
        printf '%s\n' "${BASH_REMATCH[1]}"
        out=${out#*"${BASH_REMATCH[0]}"}
    done
}

_husk()
{
    local cur=${COMP_WORDS[COMP_CWORD]} husk=${COMP_WORDS[0]/#\~/$HOME}
    local i w verb='' sub='' ctx='' npos=0 value='' dashdash='' helped=''
    local -a words=() globals=() remote=()
    COMPREPLY=()
    # bash splits words at ':' and '=' (unix:/PATH, --url=URL, -e K=V): glue the words before
    # the cursor back together.
    for ((i = 0; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if ((${#words[@]} > 1)) && [[ $w == [:=] || ${words[-1]} == *[:=] ]]; then
            words[-1]+=$w
        else
            words+=("$w")
        fi
    done
    # Global flags, the verb, its subcommand, then flags (with their values) and arguments.
    for ((i = 1; i < ${#words[@]}; i++)); do
        w=${words[i]}
        if [[ -n $dashdash ]]; then
            continue
        elif [[ $w == -- ]]; then
            dashdash=1
        elif [[ $w == -* ]]; then
            if [[ $w != *=* && " $(_husk_data "values:$ctx") " == *" $w "* ]]; then
                if ((i + 1 == ${#words[@]})); then
                    value=$w
                    break
                fi
                ((i++))
                [[ -z $verb ]] && globals+=("$w" "${words[i]}")
                [[ $w == --url || $w == --token-file ]] && remote+=("$w" "${words[i]}")
            else
                [[ -z $verb ]] && globals+=("$w")
                [[ $w == --url=* || $w == --token-file=* ]] && remote+=("$w")
            fi
        elif [[ -z $verb ]]; then
            verb=$w ctx=$w
        elif [[ $verb == help ]]; then
            ((npos == 0)) && helped=$w
            ((npos++))
        elif [[ -z $sub && -n $(_husk_data "subs:$verb") ]]; then
            sub=$w
            [[ $sub != help ]] && ctx=$verb/$sub
        else
            ((npos++))
        fi
    done

    if [[ -n $value || -n $dashdash ]]; then
        compopt -o filenames 2>/dev/null
        _husk_reply "$cur" -f
    elif [[ $cur == -* ]]; then
        _husk_reply "$cur" -W "$(_husk_data "flags:$ctx")"
    elif [[ -z $verb ]]; then
        _husk_reply "$cur" -W "$(_husk_data verbs) help"
    elif [[ $verb == help ]]; then
        # husk help VERB [SUBCOMMAND]
        if ((npos == 0)); then
            _husk_reply "$cur" -W "$(_husk_data verbs)"
        elif ((npos == 1)); then
            _husk_reply "$cur" -W "$(_husk_data "subs:$helped")"
        fi
    elif [[ $sub == help ]]; then
        ((npos == 0)) && _husk_reply "$cur" -W "$(_husk_data "subs:$verb")"
    elif [[ -z $sub && -n $(_husk_data "subs:$verb") ]]; then
        _husk_reply "$cur" -W "$(_husk_data "subs:$verb") help"
    elif ((npos == 0)); then
        case $(_husk_data "arg:$ctx") in
        file)
            compopt -o filenames 2>/dev/null
            _husk_reply "$cur" -f
            ;;
        container)
            _husk_reply "$cur" -W "$(timeout 2 "$husk" "${globals[@]}" list --quiet 2>/dev/null)"
            ;;
        function)
            _husk_reply "$cur" -W "$(_husk_functions "$husk" ${#globals[@]} "${globals[@]}" \
                "${remote[@]}")"
            ;;
        esac
    fi
    return 0
}

complete -F _husk husk

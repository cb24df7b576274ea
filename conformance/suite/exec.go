package suite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrUnsupported is returned (wrapped) by an adapter that cannot do what a test asks;
// the test is then skipped with the error as its reason.
var ErrUnsupported = errors.New("not supported by this adapter")

// Exec is a command prefix that runs a command somewhere else: `ip netns exec
// bgplb-router`, `ssh admin@router`, `kubectl exec -n net router-0 --`. The empty
// prefix runs commands on this machine.
type Exec []string

// ParseExec splits a command prefix like a POSIX shell splits words: blanks separate
// words, single and double quotes group them, a backslash escapes the next character.
// It does no expansion.
func ParseExec(s string) (Exec, error) {
	var (
		out   Exec
		cur   strings.Builder
		inTok bool
		quote rune
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch {
			case r == '"':
				quote = 0
			case r == '\\' && i+1 < len(rs) && strings.ContainsRune(`"\$`+"`", rs[i+1]):
				i++
				cur.WriteRune(rs[i])
			default:
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inTok = r, true
		case r == '\\' && i+1 < len(rs):
			i++
			cur.WriteRune(rs[i])
			inTok = true
		case r == ' ' || r == '\t' || r == '\n':
			if inTok {
				out = append(out, cur.String())
				cur.Reset()
				inTok = false
			}
		default:
			cur.WriteRune(r)
			inTok = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("parse command prefix %q: unterminated %c quote", s, quote)
	}
	if inTok {
		out = append(out, cur.String())
	}
	return out, nil
}

// Command returns the argv that runs args through the prefix. Through ssh, which
// joins its arguments into one line for the remote shell, each argument is quoted for
// a POSIX shell so it arrives as one word.
func (e Exec) Command(args ...string) []string {
	if len(e) > 0 && filepath.Base(e[0]) == "ssh" {
		quoted := make([]string, len(args))
		for i, a := range args {
			quoted[i] = shellQuote(a)
		}
		args = quoted
	}
	return append(append([]string{}, e...), args...)
}

// shellQuote quotes s for a POSIX shell unless it needs none.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// String prints the prefix as it was given (words joined by blanks).
func (e Exec) String() string { return strings.Join(e, " ") }

// Run runs args through the prefix and returns its standard output. A failure names
// the whole command line and carries its standard error.
func (e Exec) Run(ctx context.Context, args ...string) ([]byte, error) {
	return e.RunInput(ctx, nil, args...)
}

// RunInput is Run with stdin fed from in (nil: no input).
func (e Exec) RunInput(ctx context.Context, in []byte, args ...string) ([]byte, error) {
	argv := e.Command(args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if in != nil {
		cmd.Stdin = bytes.NewReader(in)
	}
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("run %q: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

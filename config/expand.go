package config

import (
	"fmt"
	"strings"
)

// expand replaces ${NAME} in s with the variable's value and
// ${NAME:-default} with its value or, when it is unset or empty, the
// default (the text up to the next "}"); $${ is a literal ${. Nothing
// else is special: a lone $ or $NAME stays as written, and a value is
// never expanded again, so a secret may hold "${" or "$". It returns a
// problem for each reference that is malformed or names a variable not
// set.
func expand(s string, lookup func(string) (string, bool)) (string, []string) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	var problems []string
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		if i > 0 && s[i-1] == '$' {
			// $${ is an escaped ${.
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			problems = append(problems, fmt.Sprintf("%q is not closed by } (write $${ for a literal ${)", s[i:]))
			break
		}
		ref := s[i : i+end+1]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(ref[2:len(ref)-1], ":-")
		if !validEnvName(name) {
			problems = append(problems, fmt.Sprintf("%q is not a variable reference: want ${NAME} or ${NAME:-default}, NAME of letters, digits and _ (write $${ for a literal ${)", ref))
			continue
		}
		v, set := "", false
		if lookup != nil {
			v, set = lookup(name)
		}
		switch {
		case hasDef && v == "":
			v = def
		case !set:
			problems = append(problems, fmt.Sprintf("environment variable %s is not set", name))
		}
		b.WriteString(v)
	}
	return b.String(), problems
}

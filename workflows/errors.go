package workflows

import (
	"fmt"
	"strings"
)

// Error is a problem in a config file, at a position in it.
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// errorSet gathers problems in the order found, each once: one broken job
// definition invoked by many entries is reported once.
type errorSet struct {
	list ErrorList
	seen map[Error]bool
}

func (s *errorSet) add(err error) {
	var add []*Error
	switch e := err.(type) {
	case ErrorList:
		add = e
	case *Error:
		add = []*Error{e}
	default:
		add = []*Error{{Msg: err.Error()}}
	}
	for _, a := range add {
		if s.seen[*a] {
			continue
		}
		if s.seen == nil {
			s.seen = map[Error]bool{}
		}
		s.seen[*a] = true
		s.list = append(s.list, a)
	}
}

// err returns the problems gathered, or nil.
func (s *errorSet) err() error {
	if len(s.list) == 0 {
		return nil
	}
	return s.list
}

// ErrorList is every problem found in a config, in file order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Package lazyre is a regular expression compiled on first use, for the
// package-level patterns that checks and parsers keep: compiled at
// start, slipway's patterns cost every command a millisecond and a half,
// most of them never used by it.
package lazyre

import (
	"regexp"
	"sync"
)

// Regexp is a pattern compiled the first time it is used; an invalid
// pattern panics then, as regexp.MustCompile does.
type Regexp struct {
	expr string
	once sync.Once
	re   *regexp.Regexp
}

// New returns expr, to be compiled on first use.
func New(expr string) *Regexp { return &Regexp{expr: expr} }

// Re is the compiled expression.
func (r *Regexp) Re() *regexp.Regexp {
	r.once.Do(func() { r.re = regexp.MustCompile(r.expr) })
	return r.re
}

func (r *Regexp) MatchString(s string) bool            { return r.Re().MatchString(s) }
func (r *Regexp) FindStringSubmatch(s string) []string { return r.Re().FindStringSubmatch(s) }
func (r *Regexp) ReplaceAllString(src, repl string) string {
	return r.Re().ReplaceAllString(src, repl)
}
func (r *Regexp) ReplaceAllStringFunc(src string, repl func(string) string) string {
	return r.Re().ReplaceAllStringFunc(src, repl)
}
func (r *Regexp) String() string { return r.expr }

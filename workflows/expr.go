package workflows

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Expressions, as CircleCI's "Expressions reference" describes them (and
// its expr library implements them): a job's `filters` and a workflow's
// `when` or `unless` may be a string such as
//
//	pipeline.git.branch == "main" or pipeline.git.tag starts-with "release"
//
// evaluated over pipeline values and parameters. The grammar, from the
// weakest binding to the strongest:
//
//	expression -> or
//	or         -> and ( "or" and )*
//	and        -> equality ( "and" equality )*
//	equality   -> comparison ( ( "==" | "!=" | "starts-with" | "matches" ) comparison )*
//	comparison -> unary ( ( ">=" | ">" | "<=" | "<" ) unary )*
//	unary      -> "not" unary | primary
//	primary    -> "true" | "false" | NUMBER | STRING | PATTERN | IDENTIFIER | "(" expression ")"
//
// Numbers are whole; strings are double-quoted, with \ escaping " and \;
// patterns are /regexes/ (for matches, which matches the whole string);
// identifiers are dotted names such as pipeline.parameters.run-nightly.
// A name that is not a pipeline value is an error; a pipeline value that
// slipway does not know the value of (CircleCI's pipeline.trigger.type,
// say) is undefined: comparing it gives undefined, and undefined is false
// wherever a truth is wanted (`not pipeline.trigger.type` is true).

// exprError is a problem in an expression, at a byte offset of it.
type exprError struct {
	pos int
	msg string
}

func (e *exprError) Error() string { return e.msg }

type exprTokenKind int

const (
	tEOF exprTokenKind = iota
	tLeft
	tRight
	tEqual
	tNotEqual
	tStartsWith
	tMatches
	tGreater
	tGreaterEqual
	tLess
	tLessEqual
	tIdent
	tString
	tNumber
	tPattern
	tAnd
	tOr
	tNot
	tTrue
	tFalse
)

type exprToken struct {
	kind   exprTokenKind
	lexeme string
	text   string // a string's or pattern's value, unescaped
	num    int64
	pos    int
}

var exprKeywords = map[string]exprTokenKind{
	"and": tAnd, "or": tOr, "not": tNot, "true": tTrue, "false": tFalse,
	"starts-with": tStartsWith, "matches": tMatches,
}

// scanExpr splits an expression into tokens.
func scanExpr(src string) ([]exprToken, error) {
	var out []exprToken
	for i := 0; i < len(src); {
		c := src[i]
		start := i
		add := func(k exprTokenKind, n int) {
			out = append(out, exprToken{kind: k, lexeme: src[start : start+n], pos: start})
			i = start + n
		}
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			add(tLeft, 1)
		case c == ')':
			add(tRight, 1)
		case c == '=':
			if !strings.HasPrefix(src[i:], "==") {
				return nil, &exprError{i, "a lone = (compare with ==)"}
			}
			add(tEqual, 2)
		case c == '!':
			if !strings.HasPrefix(src[i:], "!=") {
				return nil, &exprError{i, "a lone ! (negate with not)"}
			}
			add(tNotEqual, 2)
		case c == '>' || c == '<':
			k, n := tGreater, 1
			if c == '<' {
				k = tLess
			}
			if i+1 < len(src) && src[i+1] == '=' {
				k, n = k+1, 2 // tGreaterEqual, tLessEqual
			}
			add(k, n)
		case c == '"' || c == '/':
			var b strings.Builder
			j := i + 1
			for ; j < len(src) && src[j] != c; j++ {
				if src[j] == '\\' && j+1 < len(src) && (src[j+1] == c || src[j+1] == '\\') {
					if c == '/' && src[j+1] == '\\' {
						b.WriteByte('\\') // a regex's \\ stays
					}
					j++
				}
				b.WriteByte(src[j])
			}
			if j >= len(src) {
				if c == '"' {
					return nil, &exprError{i, "a string that is never closed"}
				}
				return nil, &exprError{i, "a pattern that is never closed"}
			}
			k := tString
			if c == '/' {
				k = tPattern
			}
			out = append(out, exprToken{kind: k, lexeme: src[i : j+1], text: b.String(), pos: i})
			i = j + 1
		case '0' <= c && c <= '9':
			j := i
			for j < len(src) && '0' <= src[j] && src[j] <= '9' {
				j++
			}
			n, err := strconv.ParseInt(src[i:j], 10, 64)
			if err != nil {
				return nil, &exprError{i, fmt.Sprintf("number %s is too large", src[i:j])}
			}
			out = append(out, exprToken{kind: tNumber, lexeme: src[i:j], num: n, pos: i})
			i = j
		case isLetter(c):
			j := i + 1
			for j < len(src) {
				if isIdentByte(src[j]) {
					j++
				} else if src[j] == '.' && j+1 < len(src) && isIdentByte(src[j+1]) {
					j += 2
				} else {
					break
				}
			}
			k, ok := exprKeywords[src[i:j]]
			if !ok {
				k = tIdent
			}
			add(k, j-i)
		default:
			return nil, &exprError{i, fmt.Sprintf("unexpected character %q", c)}
		}
	}
	return append(out, exprToken{kind: tEOF, pos: len(src)}), nil
}

func isLetter(c byte) bool    { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isIdentByte(c byte) bool { return isLetter(c) || '0' <= c && c <= '9' || c == '_' || c == '-' }

// exprNode is a parsed expression.
type exprNode struct {
	op          exprToken // the operator, or the literal or identifier
	left, right *exprNode // right alone for not
	re          *regexp.Regexp
}

type exprParser struct {
	toks  []exprToken
	i     int
	depth int // of parentheses and nots, bounded
}

// maxExprDepth bounds nesting, so that a hostile expression is an error
// rather than a deep recursion.
const maxExprDepth = 100

// maxExprTokens bounds an expression's length, and so the depth of its
// left-leaning chains (a or b or c...) that evaluation walks.
const maxExprTokens = 10_000

// parseExpr parses an expression.
func parseExpr(src string) (*exprNode, error) {
	toks, err := scanExpr(src)
	if err != nil {
		return nil, err
	}
	if len(toks) > maxExprTokens {
		return nil, &exprError{toks[maxExprTokens].pos, fmt.Sprintf("an expression longer than %d tokens", maxExprTokens)}
	}
	p := &exprParser{toks: toks}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, &exprError{t.pos, fmt.Sprintf("unexpected %s after a whole expression", t.lexeme)}
	}
	return e, nil
}

func (p *exprParser) peek() exprToken { return p.toks[p.i] }
func (p *exprParser) next() exprToken { t := p.toks[p.i]; p.i++; return t }

// binary parses a left-associative level of the grammar.
func (p *exprParser) binary(sub func() (*exprNode, error), ops ...exprTokenKind) (*exprNode, error) {
	left, err := sub()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		found := false
		for _, k := range ops {
			found = found || t.kind == k
		}
		if !found {
			return left, nil
		}
		p.next()
		right, err := sub()
		if err != nil {
			return nil, err
		}
		left = &exprNode{op: t, left: left, right: right}
		if t.kind == tMatches {
			if right.op.kind != tPattern {
				return nil, &exprError{right.op.pos, "matches takes a /pattern/ on its right"}
			}
			re, err := fullMatch(right.op.text)
			if err != nil {
				return nil, &exprError{right.op.pos, fmt.Sprintf("bad pattern %s: %v", right.op.lexeme, err)}
			}
			left.re = re
		}
	}
}

func (p *exprParser) or() (*exprNode, error)  { return p.binary(p.and, tOr) }
func (p *exprParser) and() (*exprNode, error) { return p.binary(p.equality, tAnd) }
func (p *exprParser) equality() (*exprNode, error) {
	return p.binary(p.comparison, tEqual, tNotEqual, tStartsWith, tMatches)
}
func (p *exprParser) comparison() (*exprNode, error) {
	return p.binary(p.unary, tGreater, tGreaterEqual, tLess, tLessEqual)
}

func (p *exprParser) unary() (*exprNode, error) {
	if t := p.peek(); t.kind == tNot {
		p.next()
		if p.depth++; p.depth > maxExprDepth {
			return nil, &exprError{t.pos, fmt.Sprintf("nested more than %d deep", maxExprDepth)}
		}
		defer func() { p.depth-- }()
		e, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &exprNode{op: t, right: e}, nil
	}
	return p.primary()
}

func (p *exprParser) primary() (*exprNode, error) {
	t := p.next()
	switch t.kind {
	case tTrue, tFalse, tNumber, tString, tPattern, tIdent:
		return &exprNode{op: t}, nil
	case tLeft:
		if p.depth++; p.depth > maxExprDepth {
			return nil, &exprError{t.pos, fmt.Sprintf("nested more than %d deep", maxExprDepth)}
		}
		defer func() { p.depth-- }()
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if r := p.next(); r.kind != tRight {
			return nil, &exprError{r.pos, fmt.Sprintf("( at column %d is never closed", t.pos+1)}
		}
		return e, nil
	case tEOF:
		return nil, &exprError{t.pos, "the expression ends where a value was expected"}
	}
	return nil, &exprError{t.pos, fmt.Sprintf("expected a value, not %s", t.lexeme)}
}

// exprValue is a value in an expression: a string, a whole number, a
// boolean, or undefined (a pipeline value without one).
type exprValue struct {
	v any // string, int64, bool; nil when undefined
}

func (v exprValue) truthy() bool {
	switch x := v.v.(type) {
	case bool:
		return x
	case string:
		return x != ""
	case int64:
		return x != 0
	}
	return false
}

// exprEnv gives the values of identifiers: ok false when the name is not
// a pipeline value at all, a nil value when it has none.
type exprEnv func(name string) (exprValue, bool)

// eval evaluates a parsed expression.
func (e *exprNode) eval(env exprEnv) (exprValue, error) {
	t := e.op
	switch t.kind {
	case tTrue, tFalse:
		return exprValue{t.kind == tTrue}, nil
	case tNumber:
		return exprValue{t.num}, nil
	case tString, tPattern:
		return exprValue{t.text}, nil
	case tIdent:
		v, ok := env(t.lexeme)
		if !ok {
			return exprValue{}, &exprError{t.pos, fmt.Sprintf("unknown variable %s (expressions see pipeline values and pipeline.parameters)", t.lexeme)}
		}
		return v, nil
	case tNot:
		v, err := e.right.eval(env)
		return exprValue{!v.truthy()}, err
	}
	l, err := e.left.eval(env)
	if err != nil {
		return l, err
	}
	switch t.kind {
	case tAnd, tOr:
		// Short-circuits, giving the operand that decided.
		if l.truthy() == (t.kind == tOr) {
			return l, nil
		}
		return e.right.eval(env)
	}
	r, err := e.right.eval(env)
	if err != nil {
		return r, err
	}
	if l.v == nil || r.v == nil {
		return exprValue{}, nil // undefined compares to nothing
	}
	switch t.kind {
	case tEqual:
		return exprValue{l.v == r.v}, nil
	case tNotEqual:
		return exprValue{l.v != r.v}, nil
	case tStartsWith, tMatches:
		ls, lok := l.v.(string)
		rs, rok := r.v.(string)
		if !lok || !rok {
			return exprValue{}, &exprError{t.pos, fmt.Sprintf("%s compares strings", t.lexeme)}
		}
		if t.kind == tMatches {
			return exprValue{e.re.MatchString(ls)}, nil
		}
		return exprValue{strings.HasPrefix(ls, rs)}, nil
	}
	ln, lok := l.v.(int64)
	rn, rok := r.v.(int64)
	if !lok || !rok {
		return exprValue{}, &exprError{t.pos, fmt.Sprintf("%s compares numbers", t.lexeme)}
	}
	switch t.kind {
	case tGreater:
		return exprValue{ln > rn}, nil
	case tGreaterEqual:
		return exprValue{ln >= rn}, nil
	case tLess:
		return exprValue{ln < rn}, nil
	}
	return exprValue{ln <= rn}, nil
}

// undefinedPipelineValues are pipeline values that CircleCI documents
// and slipway has no value for: an expression may name them, and finds
// them undefined.
var undefinedPipelineValues = map[string]bool{
	"trigger.type": true, "trigger.id": true, "trigger.name": true, "trigger.received_at": true,
	"event.name": true, "event.action": true, "name": true, "integration_source": true,
	"git.branch.is_default": true, "git.repo_id": true, "git.repo_name": true,
	"git.repo_owner": true, "git.repo_url": true, "git.commit.subject": true, "git.commit.body": true,
	"git.commit.author_login": true, "git.commit.url": true, "config.file_path": true, "config.ref": true,
	"config.sha": true,
}

// pipelineEnv is the environment of expressions: the pipeline values of
// a trigger and its parameters, each named as in << >> references
// (pipeline.git.branch, pipeline.parameters.x).
func pipelineEnv(pipeline map[string]*node) exprEnv {
	return func(name string) (exprValue, bool) {
		rest, ok := strings.CutPrefix(name, "pipeline.")
		if !ok {
			return exprValue{}, false
		}
		n, ok := pipeline[rest]
		if !ok {
			return exprValue{}, undefinedPipelineValues[rest] || strings.HasPrefix(rest, "event.github.") ||
				strings.HasPrefix(rest, "trigger_parameters.")
		}
		switch x := n.toAny().(type) {
		case bool:
			return exprValue{x}, true
		case int:
			return exprValue{int64(x)}, true
		case nil:
			return exprValue{}, true
		case string:
			return exprValue{x}, true
		default:
			return exprValue{n.str()}, true
		}
	}
}

// evalExpression evaluates the expression that is the text of n: true
// when it holds. Errors point at the expression's column in the file
// when n's text is its source (a plain or quoted scalar on one line).
func evalExpression(n *node, what string, env exprEnv) (bool, error) {
	e, err := parseExpr(n.value)
	var v exprValue
	if err == nil {
		v, err = e.eval(env)
	}
	if err != nil {
		ee, ok := err.(*exprError)
		if !ok {
			return false, err
		}
		at := *n
		if !strings.Contains(n.value, "\n") {
			at.col += ee.pos
			if n.quoted {
				at.col++
			}
		}
		return false, errorf(&at, "%s: expression %q: %s (at column %d of the expression)", what, n.value, ee.msg, ee.pos+1)
	}
	return v.truthy(), nil
}

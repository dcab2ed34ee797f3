package wiredoc

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// natsPackages are the packages outside the module whose constants are resolved.
var natsPackages = []string{"github.com/nats-io/nats.go", "github.com/nats-io/nats.go/jetstream"}

var (
	headerRE = regexp.MustCompile(`^(Nats|Jetflow)-[A-Za-z0-9-]+$`)
	verbRE   = regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z]`)
)

// item is a wire name found in the source.
type item struct {
	kind string // "header", "name", "message ID", "message kind"
	text string // as the source has it
	file string // relative to the module root
	line int
}

// want returns the text docs/wire.md must contain for it, as a regular expression.
func (it item) want() *regexp.Regexp {
	switch it.kind {
	case "message ID":
		parts := verbRE.Split(it.text, -1)
		for i, p := range parts {
			parts[i] = regexp.QuoteMeta(p)
		}
		return regexp.MustCompile(strings.Join(parts, "<[^<>`\\s]+>"))
	case "message kind":
		return regexp.MustCompile(regexp.QuoteMeta(".inst.<id>." + it.text))
	}
	return regexp.MustCompile(regexp.QuoteMeta(it.text))
}

// TestWireDocCoversCode fails for every wire name that the module's non-test Go source uses and
// docs/wire.md does not mention. The rule:
//
// Scanned: every .go file of the module except _test.go files and directories named testdata or
// vendor or starting with '.' or '_'. Only code counts (string literals and constant references
// found with go/parser), never comments.
//
// Mentioned: the item occurs in the code of docs/wire.md, that is inside an inline code span
// (`...`) or a fenced code block. Prose does not count.
//
// Items:
//
//  1. Header: a string literal that is a header name, ^(Nats|Jetflow)-[A-Za-z0-9-]+$, or a
//     reference to a string constant whose value is one (jetstream.MsgIDHeader names
//     "Nats-Msg-Id"; constants of the module and of nats.go and nats.go/jetstream are resolved).
//     Mentioned if the name occurs as it is.
//  2. Name (subject, stream, bucket, consumer): a string literal without white space that
//     (a) is an operand of a + concatenation in the file that declares type Names (natsjs/
//     names.go, where every name is built from the prefix: n.prefix + ".inst." + ...), or of a
//     concatenation elsewhere with an operand X.Prefix() (a name built from Names.Prefix
//     outside names.go); (b) starts with "jetflow." or "$JS."; or (c) is the value of a string
//     constant whose name contains Stream, Subject, Bucket or Consumer. Mentioned if it occurs
//     as it is (so ".inst." is mentioned by `jetflow.inst.<id>.start`, and "_INST" by
//     `JETFLOW_INST`).
//  3. Message ID: a string literal in the value of a header set to Nats-Msg-Id (X.Set or X.Add
//     with a header that resolves to "Nats-Msg-Id"), in the arguments of a WithMsgID call, or in
//     the body of a function whose name contains MsgID. Mentioned if it occurs with each fmt
//     verb (%s, %d, ...) replaced by a placeholder <...>: "dlq:%s:%d" is mentioned by
//     `dlq:<source>:<seq>`.
//  4. Message kind: the value k of a constant of type MessageKind. Mentioned if
//     `.inst.<id>.k` occurs (jetflow.inst.<id>.start for KindStart).
//
// The rule leaves out names made outside names.go from words that look like nothing in
// particular (the consumers "shared" and "raiser-<queue>", the lease keys "members." and
// "partitions.", a kind token written without a MessageKind constant), and it judges a literal
// by its text, not its role: ".inst." is mentioned by any instance subject. It is strict where a
// change is easy to miss (a new header, a new subject space, a new stream or bucket suffix, a
// new message-ID shape, a new kind) and quiet about everything else (log messages, errors, flag
// names, environment variables).
func TestWireDocCoversCode(t *testing.T) {
	root := moduleRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "wire.md"))
	if err != nil {
		t.Fatal(err)
	}
	code := codeText(doc)
	items := scan(t, root)

	// A scanner that finds nothing passes every doc: make sure it finds what is certainly there.
	for _, w := range []item{
		{kind: "header", text: "Nats-Msg-Id"}, {kind: "header", text: "Jetflow-Event-Id"},
		{kind: "name", text: ".inst."}, {kind: "name", text: "_ACT"}, {kind: "name", text: "activity-"},
		{kind: "message ID", text: "result:"}, {kind: "message kind", text: "event"},
	} {
		if !slices.ContainsFunc(items, func(it item) bool { return it.kind == w.kind && it.text == w.text }) {
			t.Errorf("the scan did not find %s %q, which the code certainly uses: the scanner is broken", w.kind, w.text)
		}
	}

	seen := map[string]bool{}
	for _, it := range items {
		key := it.kind + "\x00" + it.text
		if seen[key] {
			continue
		}
		seen[key] = true
		if re := it.want(); !re.MatchString(code) {
			t.Errorf("%s:%d: %s %q is not in docs/wire.md (want code matching %s)", it.file, it.line, it.kind, it.text, re)
		}
	}
	t.Logf("%d distinct wire items in the code", len(seen))
}

// moduleRoot returns the directory of go.mod above the working directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// codeText returns the inline code spans and fenced code blocks of a markdown document, one per
// line.
func codeText(md []byte) string {
	var b strings.Builder
	fenced := false
	for _, line := range strings.Split(string(md), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			b.WriteString(line + "\n")
			continue
		}
		parts := strings.Split(line, "`")
		for i := 1; i < len(parts)-1; i += 2 {
			b.WriteString(parts[i] + "\n")
		}
	}
	return b.String()
}

// pkg is a parsed package.
type pkg struct {
	path   string // import path
	name   string
	rel    string // directory relative to the module root ("" outside it)
	files  map[string]*ast.File
	consts map[string]ast.Expr // package-level constants with a single value
}

// scanner finds the wire items of the module.
type scanner struct {
	fset   *token.FileSet
	root   string
	pkgs   map[string]*pkg // by import path
	values map[string]string
	items  []item
}

func scan(t *testing.T, root string) []item {
	t.Helper()
	s := &scanner{fset: token.NewFileSet(), root: root, pkgs: map[string]*pkg{}, values: map[string]string{}}
	module := modulePath(t, root)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(root, path)
		ipath := module
		if rel != "." {
			ipath += "/" + filepath.ToSlash(rel)
		}
		return s.parseDir(path, ipath, filepath.ToSlash(rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range natsPackages {
		if err := s.parseDir(packageDir(t, root, ip), ip, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range s.pkgs {
		if p.rel == "" {
			continue
		}
		for _, f := range p.files {
			s.scanFile(p, f)
		}
	}
	slices.SortStableFunc(s.items, func(a, b item) int {
		if c := strings.Compare(a.file, b.file); c != 0 {
			return c
		}
		return a.line - b.line
	})
	return s.items
}

// modulePath reads the module path from go.mod.
func modulePath(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatal("go.mod has no module line")
	return ""
}

// packageDir returns the directory of the dependency ipath, as the go command resolves it.
func packageDir(t *testing.T, root, ipath string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.Dir}}", ipath)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", ipath, err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// parseDir parses the non-test Go files of dir as package ipath.
func (s *scanner) parseDir(dir, ipath, rel string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	p := &pkg{path: ipath, rel: rel, files: map[string]*ast.File{}, consts: map[string]ast.Expr{}}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(s.fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		if p.name == "" {
			p.name = f.Name.Name
		}
		p.files[name] = f
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						p.consts[n.Name] = vs.Values[i]
					}
				}
			}
		}
	}
	if len(p.files) > 0 {
		s.pkgs[ipath] = p
	}
	return nil
}

// imports maps the names f refers to imported packages by to their import paths.
func (s *scanner) imports(f *ast.File) map[string]string {
	m := map[string]string{}
	for _, spec := range f.Imports {
		ip, _ := strconv.Unquote(spec.Path.Value)
		name := ""
		switch {
		case spec.Name != nil:
			name = spec.Name.Name
		case s.pkgs[ip] != nil:
			name = s.pkgs[ip].name
		default:
			name = ip[strings.LastIndex(ip, "/")+1:]
		}
		m[name] = ip
	}
	return m
}

// resolve returns the string value of e (a string literal, or a constant of p or of an
// imported package, possibly a concatenation of those), and whether it has one.
func (s *scanner) resolve(p *pkg, imports map[string]string, e ast.Expr, depth int) (string, bool) {
	if depth > 10 {
		return "", false
	}
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		v, err := strconv.Unquote(e.Value)
		return v, err == nil
	case *ast.ParenExpr:
		return s.resolve(p, imports, e.X, depth+1)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		x, ok1 := s.resolve(p, imports, e.X, depth+1)
		y, ok2 := s.resolve(p, imports, e.Y, depth+1)
		return x + y, ok1 && ok2
	case *ast.Ident:
		if v, ok := p.consts[e.Name]; ok {
			return s.resolve(p, imports, v, depth+1)
		}
	case *ast.SelectorExpr:
		x, ok := e.X.(*ast.Ident)
		if !ok {
			return "", false
		}
		q := s.pkgs[imports[x.Name]]
		if q == nil {
			return "", false
		}
		if v, ok := q.consts[e.Sel.Name]; ok {
			return s.resolve(q, s.imports(s.fileOf(q, v)), v, depth+1)
		}
	}
	return "", false
}

// fileOf returns the file of p that holds n.
func (s *scanner) fileOf(p *pkg, n ast.Node) *ast.File {
	for _, f := range p.files {
		if f.Pos() <= n.Pos() && n.End() <= f.End() {
			return f
		}
	}
	return &ast.File{}
}

func (s *scanner) add(kind, text string, at token.Pos) {
	pos := s.fset.Position(at)
	rel, err := filepath.Rel(s.root, pos.Filename)
	if err != nil {
		rel = pos.Filename
	}
	s.items = append(s.items, item{kind: kind, text: text, file: filepath.ToSlash(rel), line: pos.Line})
}

// literals calls fn with every string literal under n.
func literals(n ast.Node, fn func(lit *ast.BasicLit, v string)) {
	ast.Inspect(n, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if v, err := strconv.Unquote(lit.Value); err == nil {
				fn(lit, v)
			}
		}
		return true
	})
}

// isPrefixCall reports whether e is a call X.Prefix().
func isPrefixCall(e ast.Expr) bool {
	c, ok := e.(*ast.CallExpr)
	if !ok || len(c.Args) > 0 {
		return false
	}
	sel, ok := c.Fun.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "Prefix"
}

// operands returns the operands of a + chain.
func operands(e ast.Expr) []ast.Expr {
	if b, ok := e.(*ast.BinaryExpr); ok && b.Op == token.ADD {
		return append(operands(b.X), operands(b.Y)...)
	}
	if p, ok := e.(*ast.ParenExpr); ok {
		return operands(p.X)
	}
	return []ast.Expr{e}
}

// declaresNames reports whether f declares type Names.
func declaresNames(f *ast.File) bool {
	for _, decl := range f.Decls {
		if gd, ok := decl.(*ast.GenDecl); ok && gd.Tok == token.TYPE {
			for _, spec := range gd.Specs {
				if spec.(*ast.TypeSpec).Name.Name == "Names" {
					return true
				}
			}
		}
	}
	return false
}

func (s *scanner) scanFile(p *pkg, f *ast.File) {
	imports := s.imports(f)
	isMsgIDHeader := func(e ast.Expr) bool {
		v, ok := s.resolve(p, imports, e, 0)
		return ok && v == "Nats-Msg-Id"
	}
	// 1. Headers, and 2(b) names by their text.
	literals(f, func(lit *ast.BasicLit, v string) {
		switch {
		case headerRE.MatchString(v):
			s.add("header", v, lit.Pos())
		case !strings.ContainsAny(v, " \t\r\n") && (strings.HasPrefix(v, "jetflow.") || strings.HasPrefix(v, "$JS.")):
			s.add("name", v, lit.Pos())
		}
	})
	namesFile := declaresNames(f)
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr: // 1. header constants of other packages
			if _, ok := n.X.(*ast.Ident); ok {
				if v, ok := s.resolve(p, imports, n, 0); ok && headerRE.MatchString(v) {
					s.add("header", v, n.Pos())
				}
			}
		case *ast.ValueSpec:
			s.valueSpec(n)
		case *ast.FuncDecl:
			if strings.Contains(n.Name.Name, "MsgID") && n.Body != nil { // 3.
				literals(n.Body, func(lit *ast.BasicLit, v string) { s.add("message ID", v, lit.Pos()) })
			}
		case *ast.BinaryExpr: // 2(a)
			if n.Op != token.ADD {
				break
			}
			ops := operands(n)
			if !namesFile && !slices.ContainsFunc(ops, isPrefixCall) {
				break
			}
			for _, op := range ops {
				if lit, ok := op.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if v, err := strconv.Unquote(lit.Value); err == nil && v != "" && !strings.ContainsAny(v, " \t\r\n") {
						s.add("name", v, lit.Pos())
					}
				}
			}
			return false // the chain's inner + nodes are done
		case *ast.CallExpr: // 3.
			name := ""
			switch fn := n.Fun.(type) {
			case *ast.Ident:
				name = fn.Name
			case *ast.SelectorExpr:
				name = fn.Sel.Name
			}
			switch {
			case name == "WithMsgID":
				for _, a := range n.Args {
					literals(a, func(lit *ast.BasicLit, v string) { s.add("message ID", v, lit.Pos()) })
				}
			case (name == "Set" || name == "Add") && len(n.Args) == 2 && isMsgIDHeader(n.Args[0]):
				literals(n.Args[1], func(lit *ast.BasicLit, v string) { s.add("message ID", v, lit.Pos()) })
			}
		}
		return true
	})
}

// valueSpec finds the items of a constant declaration: 2(c) and 4.
func (s *scanner) valueSpec(vs *ast.ValueSpec) {
	kind := false
	switch t := vs.Type.(type) {
	case *ast.Ident:
		kind = t.Name == "MessageKind"
	case *ast.SelectorExpr:
		kind = t.Sel.Name == "MessageKind"
	}
	for i, n := range vs.Names {
		if i >= len(vs.Values) {
			break
		}
		lit, ok := vs.Values[i].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			continue
		}
		v, err := strconv.Unquote(lit.Value)
		if err != nil {
			continue
		}
		switch {
		case kind:
			s.add("message kind", v, lit.Pos())
		case strings.Contains(n.Name, "Stream") || strings.Contains(n.Name, "Subject") ||
			strings.Contains(n.Name, "Bucket") || strings.Contains(n.Name, "Consumer"):
			if !strings.ContainsAny(v, " \t\r\n") {
				s.add("name", v, lit.Pos())
			}
		}
	}
}

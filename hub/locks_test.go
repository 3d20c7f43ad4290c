package hub_test

import (
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLockOrderDocumented checks that the package comment's "# Locks"
// section names every mutex of the package, as Type.field: a mutex added
// without a place in the lock order fails it.
func TestLockOrderDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, locks, ok := strings.Cut(string(doc), "// # Locks")
	if !ok {
		t.Fatal(`doc.go has no "# Locks" section`)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := gotoken.NewFileSet()
	found := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			for _, field := range st.Fields.List {
				sel, ok := field.Type.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "Mutex" && sel.Sel.Name != "RWMutex" {
					continue
				}
				if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "sync" {
					continue
				}
				for _, id := range field.Names {
					found++
					if lock := ts.Name.Name + "." + id.Name; !strings.Contains(locks, lock) {
						t.Errorf("%s: %s is not in doc.go's lock order", fset.Position(field.Pos()), lock)
					}
				}
				if len(field.Names) == 0 {
					t.Errorf("%s: %s embeds a mutex; name the field, and place it in doc.go's lock order", fset.Position(field.Pos()), ts.Name.Name)
				}
			}
			return true
		})
	}
	if found == 0 {
		t.Fatal("found no mutex in the package")
	}
}

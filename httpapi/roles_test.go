package httpapi_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/httpapi"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
)

// docRole is one row of docs/api.md's table of roles: "| `METHOD path` | role |".
var docRole = regexp.MustCompile("(?m)^\\| `([A-Z*]+) (/[^`]*)` \\| (admin|verify) \\|")

// TestRoleTableMatchesRoutes holds docs/api.md's table of which role each
// operation requires to what the server registers: a route added, removed
// or given another role without the table fails here.
func TestRoleTableMatchesRoutes(t *testing.T) {
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range docRole.FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1]+" "+m[2]+" "+m[3])
	}
	svc, err := service.New(teststore.New(t), service.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	for _, r := range httpapi.New(httpapi.Config{Service: svc}).Roles() {
		served = append(served, r.Method+" "+r.Path+" "+string(r.Role))
	}
	slices.Sort(documented)
	slices.Sort(served)
	if len(served) < 10 {
		t.Fatalf("only %d routes registered", len(served))
	}
	if !slices.Equal(documented, served) {
		var missing, extra []string
		for _, s := range served {
			if !slices.Contains(documented, s) {
				missing = append(missing, s)
			}
		}
		for _, d := range documented {
			if !slices.Contains(served, d) {
				extra = append(extra, d)
			}
		}
		t.Fatalf("docs/api.md's role table differs from the routes:\nnot documented:\n  %s\ndocumented but not served so:\n  %s",
			strings.Join(missing, "\n  "), strings.Join(extra, "\n  "))
	}
}

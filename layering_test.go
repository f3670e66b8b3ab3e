package keyplane_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/keyplane/keyplane"

// transports are the packages that speak to the outside: each is a way in,
// and none may be built on another (shared admission lives in admit/, the
// error mapping in problem/).
var transports = []string{"httpapi", "grpcapi", "gateway", "portal", "keyplanemw"}

// TestLayering checks the import rules of README's "Layout" from what the
// packages really import (go list): the domain imports nothing of the
// module; no transport depends on another; nothing below the transports
// depends on one (only cmd/keyplane wires them); keyplanemw, which the
// operator's own API links in, stays free of the HTTP API's framework.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		pkg, deps := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/"), fields[1:]
		var own []string // the module's packages this one depends on
		for _, d := range deps {
			if p, ok := strings.CutPrefix(d, module+"/"); ok {
				own = append(own, p)
			}
		}
		switch {
		case pkg == "":
			if len(own) > 0 {
				t.Errorf("the domain package depends on %v: it must depend on none of the module", own)
			}
		case pkg == "cmd/keyplane":
		case slices.Contains(transports, pkg):
			for _, d := range own {
				if slices.Contains(transports, d) {
					t.Errorf("transport %s depends on transport %s", pkg, d)
				}
			}
		default:
			for _, d := range own {
				if slices.Contains(transports, d) {
					t.Errorf("%s depends on transport %s: only cmd/keyplane may", pkg, d)
				}
			}
		}
		if pkg == "keyplanemw" && slices.ContainsFunc(deps, func(d string) bool { return strings.HasPrefix(d, "github.com/danielgtaylor/huma") }) {
			t.Error("keyplanemw depends on huma: the operator's API would link the HTTP API's framework")
		}
	}
}

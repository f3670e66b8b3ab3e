// Command keyplane runs the keyplane API key service and its admin tasks.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit code; tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newRootCommand(stdout, stderr)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		if !errors.Is(err, errUsageShown) {
			if strings.HasPrefix(err.Error(), "unknown command") {
				err = fmt.Errorf("%w (see 'keyplane --help')", err)
				err = exitCode(2, err)
			}
			fmt.Fprintln(stderr, "keyplane:", err)
		}
		return exitStatus(err)
	}
	return 0
}

// errUsageShown is returned when the help was printed instead of running
// anything: there is no error message to add.
var errUsageShown = errors.New("usage shown")

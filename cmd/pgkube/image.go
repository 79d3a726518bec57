package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pgkube/pgkube/agent/containerd"
)

// runImage loads images into the private containerd of `pgkube up`, which
// pulls from no registry here:
//
//	pgkube image import FILE --data-dir DIR   a docker or OCI archive (docker save, ctr export, ...)
//	pgkube image busybox [--tag busybox:1.36] --data-dir DIR
//	                                          an image of the host's static busybox
func runImage(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: pgkube image import FILE --data-dir DIR | pgkube image busybox [--tag T] --data-dir DIR")
	}
	fs := flag.NewFlagSet("image "+args[0], flag.ExitOnError)
	dataDir := fs.String("data-dir", defaultDataDir(), "pgkube up's data dir")
	tag := fs.String("tag", "busybox:1.36", "busybox: the image's name")
	// Flags may come before or after the file.
	var files []string
	rest := args[1:]
	for len(rest) > 0 {
		fs.Parse(rest) //nolint:errcheck // ExitOnError
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	dir := filepath.Join(*dataDir, "containerd")
	if _, err := os.Stat(containerd.Socket(dir)); err != nil {
		return fmt.Errorf("no containerd of pgkube up under %s (is `pgkube up --data-dir %s` running with the cri agent?)", dir, *dataDir)
	}
	switch args[0] {
	case "import":
		if len(files) == 0 {
			return errors.New("pgkube image import: which archive?")
		}
		for _, f := range files {
			r, err := os.Open(f)
			if err != nil {
				return err
			}
			err = containerd.Import(ctx, dir, r)
			r.Close()
			if err != nil {
				return fmt.Errorf("importing %s: %w", f, err)
			}
			fmt.Printf("imported %s\n", f)
		}
		return nil
	case "busybox":
		var buf bytes.Buffer
		if err := containerd.BusyboxArchive(&buf, *tag, []string{"sh"}); err != nil {
			return err
		}
		if err := containerd.Import(ctx, dir, &buf); err != nil {
			return err
		}
		fmt.Printf("imported %s (the host's %s)\n", *tag, containerd.BusyboxPath)
		return nil
	}
	return fmt.Errorf("pgkube image %s: unknown; want import or busybox", strings.Join(args[:1], ""))
}

package containerd

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"
)

// TestStartAndImport starts a private containerd, which loads its pause
// image, and imports a busybox image built on the spot.
func TestStartAndImport(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("containerd needs root")
	}
	if err := Available(); err != nil {
		t.Fatal(err) // make test installs it
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "pgkube-containerd-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	p, err := Start(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("containerd up with its pause image in %s", time.Since(start))
	if ok, err := HasImage(ctx, dir, PauseImage); err != nil || !ok {
		t.Fatalf("pause image: %v %v", ok, err)
	}
	var buf bytes.Buffer
	if err := BusyboxArchive(&buf, "busybox:1.36", []string{"sh"}); err != nil {
		t.Fatal(err)
	}
	if err := Import(ctx, dir, &buf); err != nil {
		t.Fatal(err)
	}
	if ok, err := HasImage(ctx, dir, "docker.io/library/busybox:1.36"); err != nil || !ok {
		t.Fatalf("imported image: %v %v", ok, err)
	}
	cancel()
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("containerd did not stop")
	}
}

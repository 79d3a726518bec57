package podfiles

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The atomic-writer layout, shared with the kubelet so that software
// that knows it (e.g. config reloaders watching for ..data) works: the
// payload lives in a timestamped ..<time> directory, ..data is a symlink
// to the current one, and every top-level entry the user sees is a
// symlink through ..data. Replacing ..data with a rename switches the
// whole payload at once.
const (
	dataDirName    = "..data"
	newDataDirName = "..data_tmp"
)

// file is one entry of a volume's payload.
type file struct {
	data []byte
	mode os.FileMode
}

// checkPayloadPath rejects paths that could leave the volume or collide
// with the writer's own ..-prefixed entries.
func checkPayloadPath(p string) error {
	switch {
	case p == "":
		return errors.New("invalid path: must not be empty")
	case filepath.IsAbs(p):
		return fmt.Errorf("invalid path %q: must be relative", p)
	case strings.HasPrefix(p, ".."):
		return fmt.Errorf("invalid path %q: must not start with '..'", p)
	}
	for _, part := range strings.Split(p, string(filepath.Separator)) {
		if part == ".." {
			return fmt.Errorf("invalid path %q: must not contain '..'", p)
		}
	}
	return nil
}

// writeAtomic makes dir show exactly payload. It does nothing when the
// current contents already match, so it can run on every pod sync.
func writeAtomic(dir string, payload map[string]file, now time.Time) error {
	clean := make(map[string]file, len(payload))
	top := map[string]bool{}
	for p, f := range payload {
		cp := filepath.Clean(p)
		if err := checkPayloadPath(cp); err != nil {
			return err
		}
		clean[cp] = f
		first, _, _ := strings.Cut(cp, string(filepath.Separator))
		top[first] = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating volume directory: %w", err)
	}

	current, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading current data link: %w", err)
	}
	same := false
	if current != "" {
		if same, err = payloadMatches(filepath.Join(dir, current), clean); err != nil {
			return err
		}
	}
	if !same {
		tsDir, err := os.MkdirTemp(dir, now.UTC().Format("..2006_01_02_15_04_05."))
		if err != nil {
			return fmt.Errorf("creating data directory: %w", err)
		}
		if err := writePayload(tsDir, clean); err != nil {
			os.RemoveAll(tsDir)
			return err
		}
		tmpLink := filepath.Join(dir, newDataDirName)
		if err := os.Remove(tmpLink); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing stale data link: %w", err)
		}
		if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
			return fmt.Errorf("creating data link: %w", err)
		}
		if err := os.Rename(tmpLink, filepath.Join(dir, dataDirName)); err != nil {
			return fmt.Errorf("switching data link: %w", err)
		}
		current = filepath.Base(tsDir)
	}

	// The visible links are created after the switch so none ever
	// dangles, and stale ones removed after it so none disappears early.
	for name := range top {
		link := filepath.Join(dir, name)
		target := filepath.Join(dataDirName, name)
		if got, err := os.Readlink(link); err == nil && got == target {
			continue
		}
		if err := os.RemoveAll(link); err != nil {
			return fmt.Errorf("replacing %s: %w", name, err)
		}
		if err := os.Symlink(target, link); err != nil {
			return fmt.Errorf("linking %s: %w", name, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("listing volume directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		stale := !top[name] && !strings.HasPrefix(name, "..")
		// Old data directories, including ones left by an interrupted
		// write, go once nothing links to them.
		oldData := strings.HasPrefix(name, "..") && name != dataDirName && name != current && e.IsDir()
		if stale || oldData {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("removing stale %s: %w", name, err)
			}
		}
	}
	return nil
}

func writePayload(tsDir string, payload map[string]file) error {
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return fmt.Errorf("setting data directory mode: %w", err)
	}
	for p, f := range payload {
		full := filepath.Join(tsDir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("creating directory for %s: %w", p, err)
		}
		if err := os.WriteFile(full, f.data, f.mode); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		// The umask must not narrow the mode the pod asked for.
		if err := os.Chmod(full, f.mode); err != nil {
			return fmt.Errorf("setting mode of %s: %w", p, err)
		}
	}
	return nil
}

// payloadMatches reports whether tsDir holds exactly payload, contents
// and modes.
func payloadMatches(tsDir string, payload map[string]file) (bool, error) {
	seen := 0
	match := true
	err := filepath.WalkDir(tsDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(tsDir, path)
		if err != nil {
			return err
		}
		want, ok := payload[rel]
		if !ok || !d.Type().IsRegular() {
			match = false
			return filepath.SkipAll
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm() != want.mode.Perm() || info.Size() != int64(len(want.data)) {
			match = false
			return filepath.SkipAll
		}
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want.data) {
			match = false
			return filepath.SkipAll
		}
		seen++
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("comparing current data: %w", err)
	}
	return match && seen == len(payload), nil
}

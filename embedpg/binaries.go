package embedpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is wrapped by the error Start returns when no directory holds
// both initdb and postgres; callers can use errors.Is to offer alternatives.
var ErrNotFound = errors.New("PostgreSQL server binaries (initdb, postgres) not found")

const installHint = "install the PostgreSQL server (Debian/Ubuntu: apt install postgresql; " +
	"Fedora/RHEL: dnf install postgresql-server; macOS: brew install postgresql), " +
	"or point pgkube at an existing server with --database-url"

// defaultSearchPath lists candidate bin directories, most preferred first.
// PATH wins so that users can choose a version explicitly; after that the
// distributions' versioned directories, highest version first, because
// Debian and RHEL keep the server binaries off PATH.
func defaultSearchPath(ctx context.Context) []string {
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if d == "" {
			d = "."
		}
		dirs = append(dirs, d)
	}
	dirs = append(dirs, versionedDirs("/usr/lib/postgresql/*/bin", "/usr/lib/postgresql/", "/bin")...)
	dirs = append(dirs, versionedDirs("/usr/pgsql-*/bin", "/usr/pgsql-", "/bin")...)
	// Homebrew's versioned formulae (postgresql@16) are keg-only, so they are not on PATH.
	dirs = append(dirs, versionedDirs("/opt/homebrew/opt/postgresql@*/bin", "/opt/homebrew/opt/postgresql@", "/bin")...)
	dirs = append(dirs, versionedDirs("/usr/local/opt/postgresql@*/bin", "/usr/local/opt/postgresql@", "/bin")...)
	dirs = append(dirs, "/usr/local/pgsql/bin") // default prefix of a source build
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output(); err == nil {
			if d := strings.TrimSpace(string(out)); d != "" {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

// versionedDirs expands pattern and sorts the matches by the version found
// between prefix and suffix, highest first (so 16 sorts before 9.6).
func versionedDirs(pattern, prefix, suffix string) []string {
	matches, _ := filepath.Glob(pattern)
	sort.SliceStable(matches, func(i, j int) bool {
		vi := parseVersion(strings.TrimSuffix(strings.TrimPrefix(matches[i], prefix), suffix))
		vj := parseVersion(strings.TrimSuffix(strings.TrimPrefix(matches[j], prefix), suffix))
		return compareVersions(vi, vj) > 0
	})
	return matches
}

func parseVersion(s string) []int {
	var v []int
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			break
		}
		v = append(v, n)
	}
	return v
}

func compareVersions(a, b []int) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

type binaries struct {
	dir      string
	initdb   string
	postgres string
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// findBinaries returns the first directory in searchPath holding both
// initdb and postgres. Both must come from the same directory, since an
// initdb of one major version cannot prepare a cluster for another.
// If wantMajor is set (the data directory already exists), directories of
// other major versions are skipped: the server would refuse the old files.
func findBinaries(ctx context.Context, searchPath []string, wantMajor string) (binaries, error) {
	var otherVersions []string
	seen := map[string]bool{}
	for _, dir := range searchPath {
		if seen[dir] {
			continue
		}
		seen[dir] = true
		b := binaries{
			dir:      dir,
			initdb:   filepath.Join(dir, "initdb"),
			postgres: filepath.Join(dir, "postgres"),
		}
		if !isExecutable(b.initdb) || !isExecutable(b.postgres) {
			continue
		}
		if wantMajor == "" {
			return b, nil
		}
		major, err := serverMajorVersion(ctx, b.postgres)
		if err != nil {
			otherVersions = append(otherVersions, fmt.Sprintf("%s (%v)", dir, err))
			continue
		}
		if major == wantMajor {
			return b, nil
		}
		otherVersions = append(otherVersions, fmt.Sprintf("%s (version %s)", dir, major))
	}
	if len(otherVersions) > 0 {
		return binaries{}, fmt.Errorf("%w for PostgreSQL %s, which created the existing data directory; found only %s: "+
			"install PostgreSQL %s, or upgrade the data directory with pg_upgrade",
			ErrNotFound, wantMajor, strings.Join(otherVersions, ", "), wantMajor)
	}
	return binaries{}, fmt.Errorf("%w (searched %s): %s", ErrNotFound, strings.Join(searchPath, ", "), installHint)
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// serverMajorVersion returns the major version the way PG_VERSION spells
// it: "15" since version 10, "9.6" before.
func serverMajorVersion(ctx context.Context, postgres string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, postgres, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("running %s --version: %w", postgres, err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("unexpected output from %s --version: %q", postgres, bytes.TrimSpace(out))
	}
	if major, _ := strconv.Atoi(string(m[1])); major < 10 && len(m[2]) > 0 {
		return string(m[1]) + "." + string(m[2]), nil
	}
	return string(m[1]), nil
}

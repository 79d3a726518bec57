package registry

import (
	"regexp"
	"strings"
)

// Image references, in the grammar container registries and runtimes use
// (github.com/distribution/reference). Upstream decides a container's
// imagePullPolicy from the tag this grammar finds, so the grammar has to be
// the same one, including what it rejects.
var (
	imagePathComponent = `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
	imageRemoteName    = imagePathComponent + `(?:/` + imagePathComponent + `)*`
	imageDomainLabel   = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	imageDomain        = `(?:` + imageDomainLabel + `(?:\.` + imageDomainLabel + `)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?`
	imageTag           = `[\w][\w.-]{0,127}`
	imageDigest        = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[[:xdigit:]]{32,}`

	// name, tag, digest
	imageReference = regexp.MustCompile(`^((?:` + imageDomain + `/)?` + imageRemoteName + `)(?::(` + imageTag + `))?(?:@(` + imageDigest + `))?$`)
	// domain, path
	imageName = regexp.MustCompile(`^(?:(` + imageDomain + `)/)?(` + imageRemoteName + `)$`)
	// A bare image ID is not a name, though it would parse as one.
	imageID = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

// imageIsLatest reports whether image refers to the "latest" tag, by naming
// it or by naming neither a tag nor a digest. A reference that does not
// parse is not latest, as upstream.
func imageIsLatest(image string) bool {
	tag, digest, ok := parseImageReference(image)
	return ok && (tag == "latest" || tag == "" && digest == "")
}

// parseImageReference splits a reference as a registry client would after
// completing short names against Docker Hub ("busybox" is
// docker.io/library/busybox).
func parseImageReference(s string) (tag, digest string, ok bool) {
	if imageID.MatchString(s) {
		return "", "", false
	}
	domain, rest := hubDomain(s)
	repo := rest
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		repo = rest[:i]
	}
	if strings.ToLower(repo) != repo {
		return "", "", false
	}
	m := imageReference.FindStringSubmatch(domain + "/" + rest)
	if m == nil {
		return "", "", false
	}
	path := m[1]
	if n := imageName.FindStringSubmatch(m[1]); n != nil {
		path = n[2]
	}
	if len(path) > 255 {
		return "", "", false
	}
	if m[3] != "" && !supportedDigest(m[3]) {
		return "", "", false
	}
	return m[2], m[3], true
}

// hubDomain separates the registry from the rest of a reference, supplying
// Docker Hub when the first component cannot be a host name.
func hubDomain(s string) (domain, rest string) {
	const hub = "docker.io"
	first, after, found := strings.Cut(s, "/")
	switch {
	case !found:
		domain, rest = hub, s
	case first == "localhost":
		domain, rest = first, after
	case first == "index.docker.io":
		domain, rest = hub, after
	case strings.ContainsAny(first, ".:") || strings.ToLower(first) != first:
		domain, rest = first, after
	default:
		domain, rest = hub, s
	}
	if domain == hub && !strings.Contains(rest, "/") {
		rest = "library/" + rest
	}
	return domain, rest
}

// supportedDigest: the grammar admits any algorithm, but a digest only
// parses if it is one of the SHA-2 hashes, hex-encoded in lower case at
// that hash's full length.
func supportedDigest(d string) bool {
	alg, hex, _ := strings.Cut(d, ":")
	want := map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}[alg]
	return want != 0 && len(hex) == want && strings.Trim(hex, "0123456789abcdef") == ""
}

package authz

import (
	"strings"
	"sync"
)

// decisionCacheSize bounds the answers one snapshot remembers; past it the
// cache starts over, which costs recomputation, never a wrong answer.
const decisionCacheSize = 16384

// decisionCache remembers RBAC answers for repeated requests: a controller
// or a client asking the same question thousands of times a second pays
// for evaluating its bindings' rules once per policy change.
type decisionCache struct {
	mu sync.RWMutex
	m  map[string]decided
}

type decided struct {
	decision Decision
	reason   string
}

func (c *decisionCache) get(key string) (decided, bool) {
	if c == nil {
		return decided{}, false
	}
	c.mu.RLock()
	d, ok := c.m[key]
	c.mu.RUnlock()
	return d, ok
}

func (c *decisionCache) put(key string, d decided) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= decisionCacheSize {
		c.m = make(map[string]decided, 64)
	}
	c.m[key] = d
	c.mu.Unlock()
}

// decisionKey is every input RBAC reads: the user's name and groups (not
// UID or extra, which RBAC ignores) and the request's attributes, joined
// with a separator that cannot occur in them.
func decisionKey(a *Attributes) string {
	var b strings.Builder
	n := len(a.User.Name) + len(a.Verb) + len(a.Namespace) + len(a.APIGroup) + len(a.Resource) + len(a.Subresource) + len(a.Name) + len(a.Path) + 16
	for _, g := range a.User.Groups {
		n += len(g) + 1
	}
	b.Grow(n)
	for _, s := range []string{a.User.Name, a.Verb, a.Namespace, a.APIGroup, a.Resource, a.Subresource, a.Name} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	if a.ResourceRequest {
		b.WriteByte('r')
	} else {
		b.WriteByte('n')
		b.WriteString(a.Path)
	}
	b.WriteByte(1)
	for _, g := range a.User.Groups {
		b.WriteString(g)
		b.WriteByte(0)
	}
	return b.String()
}

package registry

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validation runs on every write, and nearly every value is valid. Two
// costs dominate it otherwise: regular expressions, and field paths (each
// step of a path is an allocation). So the common formats get a quick
// acceptance test here, which only ever says yes for values upstream's
// checks accept; anything else goes to upstream's function, which words the
// refusal. And the *At helpers take a parent path and a step, building the
// path only when there is an error to report.

func lowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func alnum(c byte) bool { return lowerAlnum(c) || c >= 'A' && c <= 'Z' }

// fastDNSLabel: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 long.
func fastDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > validation.DNS1123LabelMaxLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !lowerAlnum(c) && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// fastDNSSubdomain: dot-separated DNS labels, at most 253 long.
func fastDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > validation.DNS1123SubdomainMaxLength {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			if !lowerAlnum(c) && (c != '-' || i == start || i == len(s)-1 || s[i+1] == '.') {
				return false
			}
			continue
		}
		if i == start {
			return false // empty part
		}
		start = i + 1
	}
	return true
}

// fastLabelName: ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63.
func fastLabelName(s string) bool {
	if len(s) == 0 || len(s) > validation.LabelValueMaxLength || !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// fastLabelKey: a label name with an optional DNS subdomain prefix.
func fastLabelKey(s string) bool {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return fastDNSSubdomain(s[:i]) && fastLabelName(s[i+1:])
	}
	return fastLabelName(s)
}

func fastLabelValue(s string) bool { return s == "" || fastLabelName(s) }

// fastPortName: an IANA service name, at most 15 of [-a-z0-9] with a
// letter, no double hyphen, no hyphen at either end.
func fastPortName(s string) bool {
	if len(s) == 0 || len(s) > 15 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	letter := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
			letter = true
		case c >= '0' && c <= '9':
		case c == '-' && s[i-1] != '-':
		default:
			return false
		}
	}
	return letter
}

// fastConfigKey: [-._a-zA-Z0-9]+ starting with an alphanumeric (which
// rules out '.', '..' and a '..' prefix).
func fastConfigKey(s string) bool {
	if len(s) == 0 || len(s) > validation.DNS1123SubdomainMaxLength || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// pathFn builds a path on demand, for code deeper in an object.
type pathFn func() *field.Path

func at(p *field.Path, name string) *field.Path {
	if name == "" {
		return p
	}
	return p.Child(name)
}

func msgsAt(msgs []string, v string, p *field.Path, name string) field.ErrorList {
	if len(msgs) == 0 {
		return nil
	}
	return nameMessages(msgs, v, at(p, name))
}

func nonNegAt(v int64, p *field.Path, name string) field.ErrorList {
	if v >= 0 {
		return nil
	}
	return field.ErrorList{field.Invalid(at(p, name), v, isNegativeErrorMsg)}
}

func dnsLabelAt(v string, p *field.Path, name string) field.ErrorList {
	if fastDNSLabel(v) {
		return nil
	}
	return msgsAt(validation.IsDNS1123Label(v), v, p, name)
}

func dnsSubdomainAt(v string, p *field.Path, name string) field.ErrorList {
	if fastDNSSubdomain(v) {
		return nil
	}
	return msgsAt(validation.IsDNS1123Subdomain(v), v, p, name)
}

func labelsOK(m map[string]string) bool {
	for k, v := range m {
		if !fastLabelKey(k) || !fastLabelValue(v) {
			return false
		}
	}
	return true
}

// labelsAt validates a label map, as metadata labels are.
func labelsAt(m map[string]string, p *field.Path, name string) field.ErrorList {
	if labelsOK(m) {
		return nil
	}
	return metavalidation.ValidateLabels(m, at(p, name))
}

// selectorAt validates a label selector strictly.
func selectorAt(s *metav1.LabelSelector, p *field.Path, name string) field.ErrorList {
	if s == nil || len(s.MatchExpressions) == 0 && labelsOK(s.MatchLabels) {
		return nil
	}
	return labelSelector(s, at(p, name))
}

// portOK: a port number in range or a valid IANA name.
func portOK(port intstr.IntOrString) bool {
	if port.Type == intstr.String {
		return fastPortName(port.StrVal)
	}
	v := port.IntValue()
	return v >= 1 && v <= 65535
}

// portNameMsgs is IsValidPortName behind the quick test.
func portNameMsgs(s string) []string {
	if fastPortName(s) {
		return nil
	}
	return validation.IsValidPortName(s)
}

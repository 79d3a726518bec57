package authn

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// StaticTokens authenticates bearer tokens listed in a file, as
// kube-apiserver's --token-auth-file does. Its tokens carry no audience:
// wrap it in AudienceAgnostic with the API audiences.
type StaticTokens struct {
	users map[string]*User
}

// NewStaticTokens returns a StaticTokens for the given token → user map.
// The map and users are copied, so later changes by the caller do not
// leak into authentication.
func NewStaticTokens(tokens map[string]User) *StaticTokens {
	s := &StaticTokens{users: make(map[string]*User, len(tokens))}
	for tok, u := range tokens {
		s.users[tok] = u.clone()
	}
	return s
}

// LoadTokenFile reads a token file in kube-apiserver's CSV format, one
// token a line:
//
//	token,user,uid[,"group1,group2"]
//
// Fields may be quoted; blank lines are skipped. Extra columns after the
// groups are ignored, as kube-apiserver does. An empty or repeated token is
// an error rather than a warning, since either is certainly a mistake in
// the file. Errors name the line but never the token.
func LoadTokenFile(path string) (*StaticTokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	s, err := parseTokenFile(f)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return s, nil
}

func parseTokenFile(in io.Reader) (*StaticTokens, error) {
	r := csv.NewReader(in)
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	s := &StaticTokens{users: map[string]*User{}}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return s, nil
		}
		if err != nil {
			// csv.ParseError already names the line.
			return nil, err
		}
		line, _ := r.FieldPos(0)
		if len(rec) < 3 {
			return nil, fmt.Errorf("line %d: need at least 3 columns (token, user name, user uid), found %d", line, len(rec))
		}
		tok, name, uid := rec[0], rec[1], rec[2]
		if tok == "" {
			return nil, fmt.Errorf("line %d: empty token", line)
		}
		if name == "" {
			return nil, fmt.Errorf("line %d: empty user name", line)
		}
		if _, dup := s.users[tok]; dup {
			return nil, fmt.Errorf("line %d: token repeats one on an earlier line", line)
		}
		u := &User{Name: name, UID: uid}
		if len(rec) >= 4 {
			for g := range strings.SplitSeq(rec[3], ",") {
				if g = strings.TrimSpace(g); g != "" {
					u.Groups = append(u.Groups, g)
				}
			}
		}
		s.users[tok] = u
	}
}

// Len returns the number of tokens.
func (s *StaticTokens) Len() int { return len(s.users) }

// AuthenticateToken implements TokenAuthenticator. It returns nil
// audiences: static tokens are not audience-bound.
func (s *StaticTokens) AuthenticateToken(_ context.Context, token string) (*User, []string, bool, error) {
	u, ok := s.users[token]
	if !ok {
		return nil, nil, false, nil
	}
	return u.clone(), nil, true, nil
}

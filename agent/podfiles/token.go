package podfiles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	defaultTokenSeconds = 3600
	// maxTokenAge renews even long-lived tokens daily, as the kubelet
	// does, so a leaked token's usefulness stays bounded.
	maxTokenAge = 24 * time.Hour
)

// tokenState records, per token path of a projected volume, which
// request produced the token in the volume and when it was issued and
// expires. The token itself is only in the volume (on tmpfs), never in
// this file.
type tokenState struct {
	Request  string    `json:"request"`
	IssuedAt time.Time `json:"issuedAt"`
	Expiry   time.Time `json:"expiry"`
}

type tokenStates map[string]tokenState

func (a tokenStates) equal(b tokenStates) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || v.Request != w.Request || !v.IssuedAt.Equal(w.IssuedAt) || !v.Expiry.Equal(w.Expiry) {
			return false
		}
	}
	return true
}

func (p *preparer) tokenStateFile(volume string) string {
	return filepath.Join(p.podDir, "tokens", volume+".json")
}

func (p *preparer) loadTokens(volume string) (tokenStates, error) {
	b, err := os.ReadFile(p.tokenStateFile(volume))
	if errors.Is(err, os.ErrNotExist) {
		return tokenStates{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading token state: %w", err)
	}
	st := tokenStates{}
	if err := json.Unmarshal(b, &st); err != nil {
		// A damaged record only costs fresh tokens.
		return tokenStates{}, nil
	}
	return st, nil
}

func (p *preparer) saveTokens(volume string, st tokenStates) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding token state: %w", err)
	}
	path := p.tokenStateFile(volume)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("saving token state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("saving token state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("saving token state: %w", err)
	}
	return nil
}

// needsRefresh: a token is renewed once 80% of its lifetime has passed
// (or it is a day old), leaving the rest for retries if the API server
// is unreachable.
func (st tokenState) needsRefresh(now time.Time) bool {
	life := st.Expiry.Sub(st.IssuedAt)
	return !now.Before(st.IssuedAt.Add(life*8/10)) || !now.Before(st.IssuedAt.Add(maxTokenAge))
}

// token returns the token for projection tp of the volume in dir:
// the one already in the volume while it is fresh, else a new one from
// the TokenRequest API, bound to the pod so it dies with it.
func (p *preparer) token(ctx context.Context, dir string, tp *corev1.ServiceAccountTokenProjection, states tokenStates) (string, tokenState, error) {
	sa := p.pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	seconds := int64(defaultTokenSeconds)
	if tp.ExpirationSeconds != nil {
		seconds = *tp.ExpirationSeconds
	}
	request := fmt.Sprintf("%s|%s|%d|%s", sa, tp.Audience, seconds, p.pod.UID)
	now := p.now()

	old, haveOld := states[tp.Path]
	var oldToken []byte
	if haveOld && old.Request == request {
		if b, err := os.ReadFile(filepath.Join(dir, dataDirName, filepath.Clean(tp.Path))); err == nil && len(b) > 0 {
			oldToken = b
			if !old.needsRefresh(now) {
				return string(b), old, nil
			}
		}
	}

	var auds []string
	if tp.Audience != "" {
		auds = []string{tp.Audience}
	}
	tr, err := p.cs.CoreV1().ServiceAccounts(p.pod.Namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         auds,
			ExpirationSeconds: &seconds,
			BoundObjectRef: &authenticationv1.BoundObjectReference{
				APIVersion: "v1", Kind: "Pod", Name: p.pod.Name, UID: p.pod.UID,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil || tr.Status.Token == "" {
		if err == nil {
			err = errors.New("empty token in response")
		}
		// An unexpired token keeps the pod working through an API
		// server outage; the next sync tries again.
		if oldToken != nil && now.Before(old.Expiry) {
			return string(oldToken), old, nil
		}
		return "", tokenState{}, fmt.Errorf("failed to fetch token for service account %s/%s: %w", p.pod.Namespace, sa, err)
	}
	// The server may grant another lifetime than asked for; its answer
	// decides when to renew.
	granted := seconds
	if tr.Spec.ExpirationSeconds != nil {
		granted = *tr.Spec.ExpirationSeconds
	}
	exp := tr.Status.ExpirationTimestamp.Time
	if exp.IsZero() {
		exp = now.Add(time.Duration(granted) * time.Second)
	}
	st := tokenState{Request: request, IssuedAt: exp.Add(-time.Duration(granted) * time.Second), Expiry: exp}
	return tr.Status.Token, st, nil
}

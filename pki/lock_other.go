//go:build !unix

package pki

import "errors"

func lockDir(string, bool) (func(), error) {
	return nil, errors.New("pki: locking the certificate directory is only implemented on Unix")
}

//go:build tools

// Package deps pins heavy dependencies so the build cache can be warmed.
package deps

import (
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/dynamic"
	_ "k8s.io/apimachinery/pkg/util/strategicpatch"
	_ "github.com/jackc/pgx/v5/pgxpool"
)

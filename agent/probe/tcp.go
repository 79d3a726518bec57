package probe

import (
	"context"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// doTCP succeeds when a connection opens; nothing is sent.
func doTCP(ctx context.Context, s *corev1.TCPSocketAction, t Target, timeout time.Duration) (Result, string, error) {
	port, err := resolvePort(s.Port, t.Container)
	if err != nil {
		return Unknown, "", err
	}
	host := s.Host
	if host == "" {
		host = t.PodIP
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := dial(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return Failure, err.Error(), nil
	}
	// The connection proved the port open; a failing close says nothing
	// about the container.
	_ = conn.Close()
	return Success, "", nil
}

// Package apiserver assembles pgkube's request path in one place:
// HTTP → (authn → authz) → decode → admission → storage → change log → watch,
// and runs it on a listener.
package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgkube/pgkube/admission"
	"github.com/pgkube/pgkube/admission/policy"
	"github.com/pgkube/pgkube/admission/webhook"
	"github.com/pgkube/pgkube/audit"
	"github.com/pgkube/pgkube/authn"
	"github.com/pgkube/pgkube/authz"
	"github.com/pgkube/pgkube/clusters"
	"github.com/pgkube/pgkube/encryption"
	"github.com/pgkube/pgkube/internal/nodeconn"
	"github.com/pgkube/pgkube/migrations"
	"github.com/pgkube/pgkube/pki"
	"github.com/pgkube/pgkube/registry"
	"github.com/pgkube/pgkube/schemas"
	"github.com/pgkube/pgkube/server"
	"github.com/pgkube/pgkube/storage"
	"github.com/pgkube/pgkube/watch"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Options configure an API server process.
type Options struct {
	DatabaseURL string
	// ListenDatabaseURL is a direct connection for LISTEN, when DatabaseURL
	// goes through a transaction-pooling proxy. Default: DatabaseURL.
	ListenDatabaseURL string
	Listen            string // host:port
	ServiceCIDR       string
	NodePortRange     string
	// HistoryRetention is how long superseded versions stay readable (watch
	// resume, paging), like kube-apiserver's compaction interval.
	HistoryRetention time.Duration
	// WatchBookmarkInterval is how often watches that allow bookmarks get
	// one (default 30s).
	WatchBookmarkInterval time.Duration

	// CertDir holds the cluster CA, the serving certificate, the
	// service-account signing key and the admin client certificate;
	// whatever is missing is generated on start (package pki). Processes
	// serving one database must share it.
	CertDir string
	// TokenAuthFile is a static token file (token,user,uid,"groups").
	TokenAuthFile string
	// OIDC, when IssuerURL is set, accepts ID tokens of an external issuer.
	OIDC authn.OIDCOptions
	// ServiceAccountIssuer is the iss of service-account tokens.
	ServiceAccountIssuer string
	// APIAudiences are the audiences a token must carry to be accepted by
	// the API (default: the service-account issuer).
	APIAudiences []string
	// ServiceAccountMaxTokenTTL caps TokenRequest lifetimes (default 48h).
	ServiceAccountMaxTokenTTL time.Duration
	// NoAnonymous refuses requests without credentials (401) instead of
	// serving them as system:anonymous.
	NoAnonymous bool
	// EncryptionConfig is an EncryptionConfiguration file: resources to
	// encrypt at rest and their keys.
	EncryptionConfig string
	// TenantQPS, TenantBurst and TenantMaxInFlight limit each tenant's
	// requests (0: unlimited); the root cluster is never limited.
	TenantQPS         float64
	TenantBurst       int
	TenantMaxInFlight int
	// TenantMaxObjects and TenantMaxBytes bound what each tenant stores
	// (0: unlimited).
	TenantMaxObjects int64
	TenantMaxBytes   int64
	// TenantIdleTimeout stops a tenant's in-memory feeds after that long
	// without requests (default 5m).
	TenantIdleTimeout time.Duration
	// AuditLogPath, if set, receives one JSON line per request.
	AuditLogPath string
	Log          *slog.Logger
}

func (o *Options) defaults() {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:6443"
	}
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = "10.96.0.0/12"
	}
	if o.NodePortRange == "" {
		o.NodePortRange = "30000-32767"
	}
	if o.HistoryRetention == 0 {
		o.HistoryRetention = 5 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ServiceAccountIssuer == "" {
		o.ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
	}
	if len(o.APIAudiences) == 0 {
		o.APIAudiences = []string{o.ServiceAccountIssuer}
	}
	if o.ServiceAccountMaxTokenTTL == 0 {
		o.ServiceAccountMaxTokenTTL = 48 * time.Hour
	}
}

// Server is a running API server.
type Server struct {
	opts     Options
	pool     *pgxpool.Pool
	store    *storage.Store
	http     *http.Server
	listener net.Listener
	handler  http.Handler
	done     chan struct{}
	pki      *pki.Bundle
	auditLog *audit.File
	// kubernetesIP is the address of each cluster's "kubernetes" Service.
	kubernetesIP string
	reg          *registry.Registry
	// stop cancels every request's context: watches end when the server
	// shuts down rather than holding Shutdown open.
	stop context.CancelFunc
}

// Start connects to the database, applies migrations, bootstraps the
// cluster's default objects and policy and starts serving HTTPS.
func Start(ctx context.Context, opts Options) (*Server, error) {
	opts.defaults()
	if opts.CertDir == "" {
		return nil, errors.New("a certificate directory is required (--cert-dir)")
	}
	var crypt *encryption.Transformer
	if opts.EncryptionConfig != "" {
		var err error
		if crypt, err = encryption.Load(opts.EncryptionConfig); err != nil {
			return nil, err
		}
	}
	host, _, err := net.SplitHostPort(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", opts.Listen, err)
	}

	cfg, err := pgxpool.ParseConfig(opts.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	if cfg.MaxConns < 20 {
		cfg.MaxConns = 20
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	s := &Server{opts: opts, pool: pool, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			s.cleanup()
		}
	}()
	if err := migrations.Apply(ctx, pool); err != nil {
		return nil, err
	}
	reg, err := registry.New()
	if err != nil {
		return nil, err
	}
	var hub *watch.Hub
	var nsLifecycle *admission.NamespaceLifecycle
	var readCache *admission.ReadCache
	var quotas *quotaRecalculator
	var srv *server.Server
	storeOpts := []storage.Option{
		storage.OnCommit(func(cluster string, objs []storage.Object) { hub.Committed(cluster, objs) }),
		storage.OnCommit(func(cluster string, objs []storage.Object) { nsLifecycle.Committed(cluster, objs) }),
		storage.OnCommit(func(cluster string, objs []storage.Object) { readCache.Committed(cluster, objs) }),
		storage.OnCommit(func(cluster string, objs []storage.Object) { quotas.committed(cluster, objs) }),
		storage.ObserveLatency(func(op string, d time.Duration) { srv.ObserveStorage(op, d) }),
		storage.WithLimits(storage.Limits{Objects: opts.TenantMaxObjects, Bytes: opts.TenantMaxBytes}),
	}
	if crypt != nil {
		storeOpts = append(storeOpts, storage.Encrypt(crypt))
	}
	store := storage.New(pool, storeOpts...)
	s.store = store
	nsLifecycle = admission.NewNamespaceLifecycle(store)
	readCache = admission.NewReadCache(store, admission.AdmissionCachedResources()...)
	limitRanger := admission.NewLimitRanger(readCache)
	serviceAccounts := admission.NewServiceAccount(readCache)
	priority := admission.NewPriority(readCache)
	podSecurity, err := admission.NewPodSecurity(readCache)
	if err != nil {
		return nil, err
	}
	resourceQuota := admission.NewResourceQuota(store, readCache)
	webhooks := webhook.New(webhook.Options{Store: readCache, Typer: reg.Scheme})
	policies := policy.New(policy.Options{Store: readCache, ParamResource: paramResource(reg), Typer: reg.Scheme})
	quotas = newQuotaRecalculator(resourceQuota, opts.Log)
	hub = watch.NewHub(store, watch.Options{})
	services, err := server.NewServiceAllocator(store, opts.ServiceCIDR, opts.NodePortRange)
	if err != nil {
		return nil, err
	}
	bundle, err := pki.Ensure(opts.CertDir, pki.Options{Hosts: []string{host}, ServiceIP: net.ParseIP(services.KubernetesIP())})
	if err != nil {
		return nil, err
	}
	s.pki = bundle
	authenticator, tenantCreds, err := authenticators(opts, bundle, store, boundLookup{store: store})
	if err != nil {
		return nil, err
	}

	rbac := authz.NewRBAC()
	authorizer := authz.Union{authz.PrivilegedGroups{authn.SystemPrivileged}, rbac}
	escalation := &authz.Escalation{RBAC: rbac, Authorizer: authorizer}
	tenancyCtl := &tenancy{store: store, hub: hub, tenants: tenantCreds, rbac: rbac, log: opts.Log, idleAfter: opts.TenantIdleTimeout}
	schemaSets := &clusterSchemas{reg: reg, sets: map[string]*schemas.Set{}}
	rv := &reviews{store: store, authorizer: authorizer, rbac: rbac,
		tokens: []authn.TokenAuthenticator{authn.PerCluster{For: tenantCreds.tokenAuthenticators}}, issuer: tenantCreds.issuerOf,
		audiences: opts.APIAudiences, maxTokenTTL: opts.ServiceAccountMaxTokenTTL}
	if opts.AuditLogPath != "" {
		if s.auditLog, err = audit.OpenFile(opts.AuditLogPath); err != nil {
			return nil, err
		}
	}
	var auditSink audit.Sink
	if s.auditLog != nil {
		auditSink = s.auditLog
	}

	nodeTLS, err := nodeClientTLS(bundle)
	if err != nil {
		return nil, err
	}
	// base ends at shutdown: every request's context and the watches
	// derive from it.
	base, stop := context.WithCancel(context.Background())
	s.stop = stop
	srv = server.New(server.Config{
		Store: store, Registry: reg, Watch: hub, BookmarkInterval: opts.WatchBookmarkInterval,
		WriteHooks: map[schema.GroupResource]server.WriteHook{{Resource: "services"}: services},
		// kube-apiserver's order; quota last, so that a write refused by
		// anything else is never charged.
		Admission: &admission.Chain{
			Mutating: []admission.Plugin{limitRanger, serviceAccounts, priority, admission.NewDefaultTolerationSeconds(),
				webhooks.Mutating()},
			Validating: []admission.Plugin{nsLifecycle, admission.ValidatingHalf(limitRanger), admission.ValidatingHalf(serviceAccounts),
				podSecurity, admission.ValidatingHalf(priority), admission.RBACEscalation{Checker: escalation},
				policies.Plugin(), webhooks.Validating(), resourceQuota},
		},
		Stopping:      base,
		Authenticator: authenticator, Authorizer: authorizer, APIAudiences: opts.APIAudiences, Audit: auditSink,
		Virtual: rv.handlers(), Paths: issuerDiscovery(tenantCreds), Clusters: tenancyCtl, SchemasFor: schemaSets.get,
		Fairness: &server.Fairness{QPS: opts.TenantQPS, Burst: opts.TenantBurst, MaxInFlight: opts.TenantMaxInFlight},
		NodeTLS:  nodeTLS,
	})
	s.handler = srv.Handler()
	tenancyCtl.s = s
	schemaSets.root = srv.Schemas()
	s.kubernetesIP = services.KubernetesIP()
	s.reg = reg
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	s.listener = ln
	listenURL := opts.ListenDatabaseURL
	if listenURL == "" {
		listenURL = opts.DatabaseURL
	}
	hub.Start(base, pool, listenURL, opts.Log)
	if err := s.bootstrap(ctx, s.kubernetesIP); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := s.bootstrapPolicy(ctx); err != nil {
		return nil, fmt.Errorf("bootstrap RBAC policy: %w", err)
	}
	// A cluster's feeds live as long as run: the server for the root, a
	// tenant's activity for a tenant (see tenancy.stopIdle).
	startFeeds := func(run context.Context, cluster string) error {
		return startClusterFeeds(run, run, s, cluster, store, hub, rbac, policies, webhooks, schemaSets, opts.Log)
	}
	tenancyCtl.start, tenancyCtl.base = startFeeds, base
	if err := startFeeds(base, clusters.Root); err != nil {
		return nil, err
	}
	if err := s.ensure(ctx, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &unstructured.Unstructured{Object: logicalClusterCRD}); err != nil {
		return nil, fmt.Errorf("bootstrap LogicalCluster kind: %w", err)
	}
	go quotas.run(base)
	go tenancyCtl.run(base)
	go tenancyCtl.stopIdle(base)
	if crypt != nil {
		go s.reencrypt(base, crypt)
	}

	tlsConfig := &tls.Config{
		Certificates: []tls.Certificate{bundle.ServingCert},
		ClientCAs:    bundle.ClientCAs(),
		// Certificates are verified per request, against the CA of the
		// logical cluster addressed (authn.ClientCerts).
		ClientAuth: tls.RequestClientCert,
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
	}
	s.http = &http.Server{Handler: s.handler, ReadHeaderTimeout: 30 * time.Second, MaxHeaderBytes: 1 << 20,
		BaseContext: func(net.Listener) context.Context { return base }, TLSConfig: tlsConfig,
		ErrorLog: slog.NewLogLogger(opts.Log.Handler(), slog.LevelDebug)}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(tls.NewListener(ln, tlsConfig)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Log.Error("serve", "err", err)
		}
	}()
	go s.compactLoop()
	ok = true
	return s, nil
}

// cleanup releases what a failed Start acquired.
func (s *Server) cleanup() {
	if s.stop != nil {
		s.stop()
	}
	if s.listener != nil {
		s.listener.Close()
	}
	if s.auditLog != nil {
		s.auditLog.Close() //nolint:errcheck
	}
	s.pool.Close()
}

// authenticators builds the authentication chain: client certificates,
// then bearer tokens, then anonymous. Each logical cluster trusts its own
// CA and service-account issuer (tenants); the root cluster also takes
// static and OIDC tokens. It returns the chain and the tenants registry
// that holds every cluster's credentials.
func authenticators(opts Options, bundle *pki.Bundle, store *storage.Store, lookup authn.BoundLookup) (authn.Authenticator, *tenants, error) {
	issuer, err := authn.NewServiceAccountIssuer(bundle.ServiceAccountKey, opts.ServiceAccountIssuer)
	if err != nil {
		return nil, nil, err
	}
	var tokens []authn.TokenAuthenticator
	if opts.TokenAuthFile != "" {
		st, err := authn.LoadTokenFile(opts.TokenAuthFile)
		if err != nil {
			return nil, nil, err
		}
		// Static and OIDC tokens are not minted for an audience; they count
		// as being for the API's own.
		tokens = append(tokens, authn.AudienceAgnostic{Implicit: opts.APIAudiences, Token: st})
	}
	tokens = append(tokens, authn.ServiceAccountTokens{Issuer: issuer, Lookup: lookup})
	if opts.OIDC.IssuerURL != "" {
		o, err := authn.NewOIDC(opts.OIDC)
		if err != nil {
			return nil, nil, err
		}
		tokens = append(tokens, authn.AudienceAgnostic{Implicit: opts.APIAudiences, Token: o})
	}
	t := &tenants{store: store, issuer: strings.TrimSuffix(opts.ServiceAccountIssuer, "/"), lookup: lookup,
		root:  &tenantCredentials{clientCAs: bundle.ClientCAs(), issuer: issuer, tokens: tokens},
		creds: map[string]*tenantCredentials{}, exists: map[string]time.Time{}}
	own := []authn.Authenticator{authn.ClientCerts{Roots: t.clientCAs, Verified: authn.NewVerifyCache()},
		authn.Bearer{Tokens: []authn.TokenAuthenticator{authn.PerCluster{For: t.tokenAuthenticators}}}}
	// The root's system:masters (pgkube's own components, operators) are
	// let into every cluster; see authn.FromRoot.
	system := authn.FromRoot{Authenticator: authn.Union{Authenticators: own}, Groups: []string{authn.SystemPrivileged}}
	return authn.Union{Authenticators: append(own, system), Anonymous: !opts.NoAnonymous}, t, nil
}

// Addr is where the server listens.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// URL is the server's base URL.
func (s *Server) URL() string { return "https://" + s.Addr() }

// PKI is the server's certificates and keys.
func (s *Server) PKI() *pki.Bundle { return s.pki }

// Shutdown stops accepting requests, ends watches and closes the database.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	err := s.http.Shutdown(ctx)
	if err != nil {
		s.http.Close()
	}
	<-s.done
	s.pool.Close()
	if s.auditLog != nil {
		if cerr := s.auditLog.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// compactLoop runs compaction at half the retention, at most once a
// minute, so an expired version is gone within 1.5 retention periods.
func (s *Server) compactLoop() {
	every := min(max(s.opts.HistoryRetention/2, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := s.store.Compact(ctx, s.opts.HistoryRetention); err != nil {
				s.opts.Log.Warn("compaction", "err", err)
			}
			cancel()
		}
	}
}

// reencrypt rewrites data stored under an old key or in the clear, so that
// after a key rotation the old key can be dropped. Every process does it;
// a row rewritten by one is skipped by the others.
func (s *Server) reencrypt(ctx context.Context, crypt *encryption.Transformer) {
	for _, res := range crypt.Resources() {
		n, err := s.store.Reencrypt(ctx, res)
		if err != nil && ctx.Err() == nil {
			s.opts.Log.Warn("re-encryption", "resource", res, "err", err)
			continue
		}
		if n > 0 {
			s.opts.Log.Info("re-encrypted stored objects under the current key", "resource", res, "rows", n)
		}
	}
}

// issuerDiscovery serves each cluster's service-account issuer's OpenID
// metadata and keys, so systems outside the cluster can verify its tokens.
func issuerDiscovery(t *tenants) map[string]http.HandlerFunc {
	serve := func(body func(*authn.ServiceAccountIssuer) []byte, contentType string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			issuer, err := t.issuerOf(r.Context(), clusters.From(r.Context()))
			if err != nil {
				http.Error(w, "issuer unavailable", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", contentType)
			w.Header().Set("Cache-Control", "public, max-age=3600")
			w.Write(body(issuer)) //nolint:errcheck
		}
	}
	return map[string]http.HandlerFunc{
		"/.well-known/openid-configuration": serve(func(i *authn.ServiceAccountIssuer) []byte {
			return i.OpenIDConfiguration(strings.TrimSuffix(i.Issuer(), "/") + "/openid/v1/jwks")
		}, "application/json"),
		"/openid/v1/jwks": serve((*authn.ServiceAccountIssuer).JWKS, "application/jwk-set+json"),
	}
}

// startClusterFeeds readies one logical cluster's in-memory state: its RBAC
// policy (with aggregated roles settled) and its admission configuration,
// then keeps them current until base ends.
func startClusterFeeds(ctx, base context.Context, s *Server, cluster string, store *storage.Store, hub *watch.Hub,
	rbac *authz.RBAC, policies applier, webhooks applier, schemaSets *clusterSchemas, log *slog.Logger) error {
	agg := newAggregator(s, rbac, cluster)
	rbacFeed := &feed{store: store, hub: hub, cluster: cluster, kinds: rbacKinds, cache: rbac, log: log,
		changed: func(key string) {
			if key == "" || key == "rbac.authorization.k8s.io/clusterroles" {
				agg.changed()
			}
		}}
	var from int64
	for pass, settled := 0, false; !settled; pass++ {
		if pass == 10 {
			return errors.New("aggregated ClusterRoles do not settle")
		}
		var err error
		if from, err = rbacFeed.load(ctx); err != nil {
			return err
		}
		n, err := agg.pass(ctx)
		if err != nil {
			return err
		}
		settled = n == 0
	}
	go rbacFeed.run(base, from)
	go agg.run(base)
	admissionFeed := &feed{store: store, hub: hub, cluster: cluster, kinds: admissionConfigKinds, log: log,
		cache: newApplyCache(func(obj runtime.Object) applier {
			switch obj.(type) {
			case *admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
				return policies
			}
			return webhooks
		})}
	admissionFrom, err := admissionFeed.load(ctx)
	if err != nil {
		return err
	}
	go admissionFeed.run(base, admissionFrom)
	crds := newCRDController(s, s.reg, store, hub, cluster, log)
	cs := &crdSchemas{cluster: cluster, sets: schemaSets, kinds: map[string][]schema.GroupVersionKind{}}
	crds.schemaChanged, crds.validator, crds.unknown = cs.changed, cs.validator, cs.unknown
	crdsFrom, err := crds.load(ctx)
	if err != nil {
		return err
	}
	go crds.run(base, crdsFrom)
	return nil
}

// nodeClientTLS is how the API server reaches node agents: a client
// certificate for nodeconn.ClientCN in system:masters (as kube-apiserver's
// --kubelet-client-certificate), issued in memory from the cluster CA at
// every start, and that CA as the only root for the agents' serving
// certificates (agents sign theirs with it from the shared cert dir).
func nodeClientTLS(bundle *pki.Bundle) (*tls.Config, error) {
	certPEM, keyPEM, err := bundle.IssueClient(nodeconn.ClientCN, []string{pki.AdminGroup}, 365*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("node client certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("node client certificate: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(bundle.CA)
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: roots}, nil
}

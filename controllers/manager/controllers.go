package manager

import (
	"github.com/pgkube/pgkube/controllers/cronjob"
	"github.com/pgkube/pgkube/controllers/daemonset"
	"github.com/pgkube/pgkube/controllers/deployment"
	"github.com/pgkube/pgkube/controllers/disruption"
	"github.com/pgkube/pgkube/controllers/endpoints"
	"github.com/pgkube/pgkube/controllers/endpointslice"
	"github.com/pgkube/pgkube/controllers/framework"
	"github.com/pgkube/pgkube/controllers/gc"
	"github.com/pgkube/pgkube/controllers/job"
	"github.com/pgkube/pgkube/controllers/namespace"
	"github.com/pgkube/pgkube/controllers/nodelifecycle"
	"github.com/pgkube/pgkube/controllers/podgc"
	"github.com/pgkube/pgkube/controllers/replicaset"
	"github.com/pgkube/pgkube/controllers/serviceaccount"
	"github.com/pgkube/pgkube/controllers/statefulset"
	"github.com/pgkube/pgkube/controllers/testclock"
	"github.com/pgkube/pgkube/controllers/ttlafterfinished"
	"github.com/pgkube/pgkube/controllers/volumebinding"
)

// Controllers are the controllers the manager knows, by the names
// --controllers takes (kube-controller-manager's where there is one).
var Controllers = map[string]func(*framework.Context) (framework.Runnable, error){
	"namespace":               namespace.New,
	"serviceaccount":          serviceaccount.NewServiceAccounts,
	"root-ca-cert-publisher":  serviceaccount.NewRootCAPublisher,
	"replicaset":              replicaset.NewReplicaSet,
	"replicationcontroller":   replicaset.NewReplicationController,
	"deployment":              deployment.New,
	"statefulset":             statefulset.New,
	"garbagecollector":        gc.New,
	"endpoint":                endpoints.New,
	"endpointslice":           endpointslice.New,
	"persistentvolume-binder": volumebinding.New,
	"daemonset":               daemonset.New,
	"nodelifecycle":           nodelifecycle.New,
	"podgc":                   podgc.New,
	// Time-based controllers take the test clock when
	// PGKUBE_TEST_CLOCK_FILE is set (see controllers/testclock).
	"job":                testclock.Wrap(job.New),
	"cronjob":            testclock.Wrap(cronjob.New),
	"ttl-after-finished": testclock.Wrap(ttlafterfinished.New),
	"disruption":         testclock.Wrap(disruption.New),
}

// DisabledByDefault are left out of "*".
var DisabledByDefault = []string{}

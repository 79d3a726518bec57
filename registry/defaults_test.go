package registry

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// A digest that parses (sha256, 64 lower-case hex digits).
const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// The defaulted form of a container that gave only name and image, in a
// pod or a template: what every expectation below repeats.
const podSpecDefaults = `
    dnsPolicy: ClusterFirst
    restartPolicy: Always
    schedulerName: default-scheduler
    securityContext: {}
    terminationGracePeriodSeconds: 30`

// defaultingCases: each input is a manifest as a client sends it; each want
// is what kube-apiserver 1.33 stores for it before admission plugins run
// (see TestMinimalPodAsKubeAPIServer for which fields those add). The
// expectations are written out from upstream's behaviour, not computed.
var defaultingCases = []struct{ name, in, want string }{
	{"pod/minimal", `
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox}]
`, `
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Always
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
  dnsPolicy: ClusterFirst
  enableServiceLinks: true
  restartPolicy: Always
  schedulerName: default-scheduler
  securityContext: {}
  terminationGracePeriodSeconds: 30
`},
	{"pod/full", `
apiVersion: v1
kind: Pod
metadata:
  name: full
  annotations: {pod.beta.kubernetes.io/init-containers: "[]", keep: "yes"}
spec:
  hostNetwork: true
  serviceAccount: builder
  terminationGracePeriodSeconds: -5
  initContainers:
  - name: init
    image: registry.example.com:5000/tools/init:v1.2
    ports: [{containerPort: 9000}]
    resources:
      limits: {cpu: "0.0001", memory: 64Mi}
  containers:
  - name: app
    image: app@` + testDigest + `
    ports:
    - containerPort: 8080
    - {containerPort: 53, protocol: UDP, hostPort: 5353}
    env:
    - name: NODE
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    resources:
      limits: {cpu: "1", memory: 128Mi}
      requests: {cpu: 250m}
    livenessProbe:
      httpGet: {port: 8080}
    readinessProbe:
      grpc: {port: 9090}
      periodSeconds: 5
    startupProbe:
      tcpSocket: {port: 8080}
      failureThreshold: 30
    lifecycle:
      postStart: {exec: {command: ["true"]}}
      preStop: {httpGet: {port: 8080, path: /quit}}
  - name: side
    image: side:latest
    imagePullPolicy: Never
    terminationMessagePolicy: FallbackToLogsOnError
  ephemeralContainers:
  - name: debug
    image: busybox:1.36
  volumes:
  - name: scratch
  - name: host
    hostPath: {path: /var/log}
  - name: secret
    secret: {secretName: s}
  - name: config
    configMap: {name: c, defaultMode: 256}
  - name: meta
    downwardAPI:
      items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
  - name: proj
    projected:
      sources:
      - serviceAccountToken: {path: token}
      - downwardAPI:
          items: [{path: ns, fieldRef: {fieldPath: metadata.namespace, apiVersion: v2}}]
  - name: eph
    ephemeral:
      volumeClaimTemplate:
        spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
  - name: disk
    azureDisk: {diskName: d, diskURI: u}
  - name: ceph
    rbd: {monitors: [m], image: i}
  - name: iscsi
    iscsi: {targetPortal: t, iqn: q, lun: 0}
  - name: sio
    scaleIO: {gateway: g, system: s, secretRef: {name: x}}
status:
  podIP: 10.0.0.5
`, `
apiVersion: v1
kind: Pod
metadata:
  name: full
  annotations: {keep: "yes"}
spec:
  hostNetwork: true
  serviceAccount: builder
  serviceAccountName: builder
  terminationGracePeriodSeconds: 1
  enableServiceLinks: true
  dnsPolicy: ClusterFirst
  restartPolicy: Always
  schedulerName: default-scheduler
  securityContext: {}
  initContainers:
  - name: init
    image: registry.example.com:5000/tools/init:v1.2
    imagePullPolicy: IfNotPresent
    ports: [{containerPort: 9000, hostPort: 9000, protocol: TCP}]
    resources:
      limits: {cpu: 1m, memory: 64Mi}
      requests: {cpu: 1m, memory: 64Mi}
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
  containers:
  - name: app
    image: app@` + testDigest + `
    imagePullPolicy: IfNotPresent
    ports:
    - {containerPort: 8080, hostPort: 8080, protocol: TCP}
    - {containerPort: 53, protocol: UDP, hostPort: 5353}
    env:
    - name: NODE
      valueFrom: {fieldRef: {apiVersion: v1, fieldPath: spec.nodeName}}
    resources:
      limits: {cpu: "1", memory: 128Mi}
      requests: {cpu: 250m, memory: 128Mi}
    livenessProbe:
      httpGet: {path: /, port: 8080, scheme: HTTP}
      timeoutSeconds: 1
      periodSeconds: 10
      successThreshold: 1
      failureThreshold: 3
    readinessProbe:
      grpc: {port: 9090, service: ""}
      timeoutSeconds: 1
      periodSeconds: 5
      successThreshold: 1
      failureThreshold: 3
    startupProbe:
      tcpSocket: {port: 8080}
      timeoutSeconds: 1
      periodSeconds: 10
      successThreshold: 1
      failureThreshold: 30
    lifecycle:
      postStart: {exec: {command: ["true"]}}
      preStop: {httpGet: {port: 8080, path: /quit, scheme: HTTP}}
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
  - name: side
    image: side:latest
    imagePullPolicy: Never
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: FallbackToLogsOnError
  ephemeralContainers:
  - name: debug
    image: busybox:1.36
    imagePullPolicy: IfNotPresent
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
  volumes:
  - name: scratch
    emptyDir: {}
  - name: host
    hostPath: {path: /var/log, type: ""}
  - name: secret
    secret: {secretName: s, defaultMode: 420}
  - name: config
    configMap: {name: c, defaultMode: 256}
  - name: meta
    downwardAPI:
      defaultMode: 420
      items: [{path: labels, fieldRef: {apiVersion: v1, fieldPath: metadata.labels}}]
  - name: proj
    projected:
      defaultMode: 420
      sources:
      - serviceAccountToken: {path: token, expirationSeconds: 3600}
      - downwardAPI:
          items: [{path: ns, fieldRef: {fieldPath: metadata.namespace, apiVersion: v2}}]
  - name: eph
    ephemeral:
      volumeClaimTemplate:
        spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}, volumeMode: Filesystem}
  - name: disk
    azureDisk: {diskName: d, diskURI: u, cachingMode: ReadWrite, fsType: ext4, readOnly: false, kind: Shared}
  - name: ceph
    rbd: {monitors: [m], image: i, pool: rbd, user: admin, keyring: /etc/ceph/keyring}
  - name: iscsi
    iscsi: {targetPortal: t, iqn: q, lun: 0, iscsiInterface: default}
  - name: sio
    scaleIO: {gateway: g, system: s, secretRef: {name: x}, storageMode: ThinProvisioned, fsType: xfs}
status:
  podIP: 10.0.0.5
  podIPs: [{ip: 10.0.0.5}]
`},
	{"pod/explicit values kept", `
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: busybox
    imagePullPolicy: IfNotPresent
    terminationMessagePath: /tmp/msg
    terminationMessagePolicy: FallbackToLogsOnError
    livenessProbe:
      httpGet: {path: /healthz, port: 80, scheme: HTTPS}
      timeoutSeconds: 5
      periodSeconds: 20
      successThreshold: 1
      failureThreshold: 9
  dnsPolicy: Default
  enableServiceLinks: false
  restartPolicy: Never
  schedulerName: other
  securityContext: {runAsUser: 1000}
  serviceAccountName: runner
  serviceAccount: ignored
  terminationGracePeriodSeconds: 0
  volumes:
  - name: s
    secret: {secretName: s, defaultMode: 0}
status:
  podIP: 10.0.0.1
  podIPs: [{ip: 10.0.0.9}, {ip: fd00::9}]
`, `
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: busybox
    imagePullPolicy: IfNotPresent
    terminationMessagePath: /tmp/msg
    terminationMessagePolicy: FallbackToLogsOnError
    livenessProbe:
      httpGet: {path: /healthz, port: 80, scheme: HTTPS}
      timeoutSeconds: 5
      periodSeconds: 20
      successThreshold: 1
      failureThreshold: 9
  dnsPolicy: Default
  enableServiceLinks: false
  restartPolicy: Never
  schedulerName: other
  securityContext: {runAsUser: 1000}
  serviceAccountName: runner
  serviceAccount: runner
  terminationGracePeriodSeconds: 0
  volumes:
  - name: s
    secret: {secretName: s, defaultMode: 0}
status:
  podIP: 10.0.0.1
  podIPs: [{ip: 10.0.0.1}]
`},
	{"pod/podIPs only", `
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {containers: [{name: c, image: busybox:latest}]}
status: {podIPs: [{ip: 10.0.0.2}]}
`, `
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - {name: c, image: "busybox:latest", imagePullPolicy: Always, terminationMessagePath: /dev/termination-log, terminationMessagePolicy: File}
  dnsPolicy: ClusterFirst
  enableServiceLinks: true
  restartPolicy: Always
  schedulerName: default-scheduler
  securityContext: {}
  terminationGracePeriodSeconds: 30
status: {podIP: 10.0.0.2, podIPs: [{ip: 10.0.0.2}]}
`},
	{"podtemplate", `
apiVersion: v1
kind: PodTemplate
metadata: {name: t}
template:
  metadata: {labels: {app: a}}
  spec:
    containers: [{name: c, image: nginx:1.27, resources: {limits: {cpu: "1"}}}]
`, `
apiVersion: v1
kind: PodTemplate
metadata: {name: t}
template:
  metadata: {labels: {app: a}}
  spec:
    containers:
    - name: c
      image: nginx:1.27
      imagePullPolicy: IfNotPresent
      resources: {limits: {cpu: "1"}}
      terminationMessagePath: /dev/termination-log
      terminationMessagePolicy: File` + podSpecDefaults + `
`},
	{"replicationcontroller", `
apiVersion: v1
kind: ReplicationController
metadata: {name: rc}
spec:
  template:
    metadata: {labels: {app: a}}
    spec: {containers: [{name: c, image: nginx}]}
`, `
apiVersion: v1
kind: ReplicationController
metadata: {name: rc, labels: {app: a}}
spec:
  replicas: 1
  selector: {app: a}
  template:
    metadata: {labels: {app: a}}
    spec:
      containers:
      - {name: c, image: nginx, imagePullPolicy: Always, terminationMessagePath: /dev/termination-log, terminationMessagePolicy: File}` +
		indentYAML(podSpecDefaults, 1) + `
`},
	{"replicationcontroller/explicit", `
apiVersion: v1
kind: ReplicationController
metadata: {name: rc, labels: {team: x}}
spec:
  replicas: 0
  selector: {app: a, tier: web}
`, `
apiVersion: v1
kind: ReplicationController
metadata: {name: rc, labels: {team: x}}
spec:
  replicas: 0
  selector: {app: a, tier: web}
`},
	{"service/minimal", `
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  selector: {app: a}
  ports: [{port: 80}, {name: dns, port: 53, protocol: UDP, targetPort: dns}]
`, `
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  type: ClusterIP
  selector: {app: a}
  ports:
  - {port: 80, protocol: TCP, targetPort: 80}
  - {name: dns, port: 53, protocol: UDP, targetPort: dns}
  sessionAffinity: None
  internalTrafficPolicy: Cluster
`},
	{"service/loadbalancer", `
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  type: LoadBalancer
  sessionAffinity: ClientIP
  ports: [{port: 443, targetPort: 0}]
status:
  loadBalancer:
    ingress: [{ip: 192.0.2.1}, {hostname: lb.example.com}, {ip: 192.0.2.2, ipMode: Proxy}]
`, `
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  type: LoadBalancer
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 10800}}
  ports: [{port: 443, protocol: TCP, targetPort: 443}]
  externalTrafficPolicy: Cluster
  internalTrafficPolicy: Cluster
  allocateLoadBalancerNodePorts: true
status:
  loadBalancer:
    ingress: [{ip: 192.0.2.1, ipMode: VIP}, {hostname: lb.example.com}, {ip: 192.0.2.2, ipMode: Proxy}]
`},
	{"service/nodeport explicit", `
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  type: NodePort
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  externalTrafficPolicy: Local
  internalTrafficPolicy: Local
  ports: [{port: 80, targetPort: http, protocol: SCTP, nodePort: 30080}]
`, `
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  type: NodePort
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  externalTrafficPolicy: Local
  internalTrafficPolicy: Local
  ports: [{port: 80, targetPort: http, protocol: SCTP, nodePort: 30080}]
`},
	{"service/external IPs, stray affinity config", `
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  externalIPs: [192.0.2.9]
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  ports: [{port: 80}]
`, `
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  type: ClusterIP
  externalIPs: [192.0.2.9]
  sessionAffinity: None
  externalTrafficPolicy: Cluster
  internalTrafficPolicy: Cluster
  ports: [{port: 80, protocol: TCP, targetPort: 80}]
`},
	{"service/externalname", `
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {type: ExternalName, externalName: example.com}
`, `
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {type: ExternalName, externalName: example.com, sessionAffinity: None}
`},
	{"endpoints", `
apiVersion: v1
kind: Endpoints
metadata: {name: e}
subsets:
- addresses: [{ip: 10.0.0.1}]
  ports: [{port: 80}, {port: 53, protocol: UDP}]
`, `
apiVersion: v1
kind: Endpoints
metadata: {name: e}
subsets:
- addresses: [{ip: 10.0.0.1}]
  ports: [{port: 80, protocol: TCP}, {port: 53, protocol: UDP}]
`},
	{"secret", `
apiVersion: v1
kind: Secret
metadata: {name: s}
`, `
apiVersion: v1
kind: Secret
metadata: {name: s}
type: Opaque
`},
	{"secret/typed", `
apiVersion: v1
kind: Secret
metadata: {name: s}
type: kubernetes.io/tls
`, `
apiVersion: v1
kind: Secret
metadata: {name: s}
type: kubernetes.io/tls
`},
	{"namespace", `
apiVersion: v1
kind: Namespace
metadata: {name: team-a, labels: {kubernetes.io/metadata.name: spoofed, env: dev}}
`, `
apiVersion: v1
kind: Namespace
metadata: {name: team-a, labels: {kubernetes.io/metadata.name: team-a, env: dev}}
status: {phase: Active}
`},
	{"namespace/unnamed", `
apiVersion: v1
kind: Namespace
metadata: {generateName: team-}
`, `
apiVersion: v1
kind: Namespace
metadata: {generateName: team-}
status: {phase: Active}
`},
	{"node", `
apiVersion: v1
kind: Node
metadata: {name: node-1}
spec: {podCIDRs: [10.244.1.0/24, fd00:1::/64]}
status:
  capacity: {cpu: "4", memory: 8Gi, pods: "110"}
`, `
apiVersion: v1
kind: Node
metadata: {name: node-1}
spec: {podCIDR: 10.244.1.0/24, podCIDRs: [10.244.1.0/24, fd00:1::/64]}
status:
  capacity: {cpu: "4", memory: 8Gi, pods: "110"}
  allocatable: {cpu: "4", memory: 8Gi, pods: "110"}
`},
	{"node/podCIDR wins", `
apiVersion: v1
kind: Node
metadata: {name: node-1}
spec: {podCIDR: 10.244.2.0/24, podCIDRs: [10.244.9.0/24]}
status:
  capacity: {cpu: "4"}
  allocatable: {cpu: 3500m}
`, `
apiVersion: v1
kind: Node
metadata: {name: node-1}
spec: {podCIDR: 10.244.2.0/24, podCIDRs: [10.244.2.0/24]}
status:
  capacity: {cpu: "4"}
  allocatable: {cpu: 3500m}
`},
	{"persistentvolume", `
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /data}
`, `
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /data, type: ""}
  persistentVolumeReclaimPolicy: Retain
  volumeMode: Filesystem
status: {phase: Pending}
`},
	{"persistentvolume/plugins", `
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv}
spec:
  persistentVolumeReclaimPolicy: Delete
  volumeMode: Block
  rbd: {monitors: [m], image: i, user: ceph}
status: {phase: Bound}
`, `
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv}
spec:
  persistentVolumeReclaimPolicy: Delete
  volumeMode: Block
  rbd: {monitors: [m], image: i, user: ceph, pool: rbd, keyring: /etc/ceph/keyring}
status: {phase: Bound}
`},
	{"persistentvolumeclaim", `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: c}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`, `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: c}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
  volumeMode: Filesystem
status: {phase: Pending}
`},
	{"limitrange", `
apiVersion: v1
kind: LimitRange
metadata: {name: l}
spec:
  limits:
  - type: Container
    max: {cpu: "2", memory: 1Gi}
    min: {cpu: 100m, ephemeral-storage: 1Mi}
    default: {memory: 512Mi}
  - type: Pod
    max: {cpu: "4"}
`, `
apiVersion: v1
kind: LimitRange
metadata: {name: l}
spec:
  limits:
  - type: Container
    max: {cpu: "2", memory: 1Gi}
    min: {cpu: 100m, ephemeral-storage: 1Mi}
    default: {cpu: "2", memory: 512Mi}
    defaultRequest: {cpu: "2", memory: 512Mi, ephemeral-storage: 1Mi}
  - type: Pod
    max: {cpu: "4"}
`},
	{"resourcequota", `
apiVersion: v1
kind: ResourceQuota
metadata: {name: q}
spec: {hard: {cpu: "0.0005", pods: "10"}}
`, `
apiVersion: v1
kind: ResourceQuota
metadata: {name: q}
spec: {hard: {cpu: 1m, pods: "10"}}
`},
	{"deployment", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: a}}
    spec: {containers: [{name: c, image: nginx}]}
`, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: 1
  selector: {matchLabels: {app: a}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}
  revisionHistoryLimit: 10
  progressDeadlineSeconds: 600
  template:
    metadata: {labels: {app: a}}
    spec:
      containers:
      - {name: c, image: nginx, imagePullPolicy: Always, terminationMessagePath: /dev/termination-log, terminationMessagePolicy: File}` +
		indentYAML(podSpecDefaults, 1) + `
`},
	{"deployment/explicit", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: 0
  strategy: {type: Recreate}
  revisionHistoryLimit: 0
  progressDeadlineSeconds: 30
`, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: 0
  strategy: {type: Recreate}
  revisionHistoryLimit: 0
  progressDeadlineSeconds: 30
  template:
    spec:` + indentYAML(podSpecDefaults, 1) + `
`},
	{"deployment/partial rolling update", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  strategy: {rollingUpdate: {maxSurge: 1}}
`, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: 1
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 25%}}
  revisionHistoryLimit: 10
  progressDeadlineSeconds: 600
  template:
    spec:` + indentYAML(podSpecDefaults, 1) + `
`},
	{"replicaset", `
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: r}
spec: {selector: {matchLabels: {app: a}}}
`, `
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: r}
spec:
  replicas: 1
  selector: {matchLabels: {app: a}}
  template:
    spec:` + indentYAML(podSpecDefaults, 1) + `
`},
	{"statefulset", `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s}
spec:
  serviceName: s
  selector: {matchLabels: {app: a}}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`, `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s}
spec:
  replicas: 1
  serviceName: s
  selector: {matchLabels: {app: a}}
  podManagementPolicy: OrderedReady
  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 0}}
  revisionHistoryLimit: 10
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Retain, whenScaled: Retain}
  template:
    spec:` + indentYAML(podSpecDefaults, 1) + `
  volumeClaimTemplates:
  - apiVersion: v1
    kind: PersistentVolumeClaim
    metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}, volumeMode: Filesystem}
    status: {phase: Pending}
`},
	{"statefulset/explicit", `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s}
spec:
  replicas: 0
  podManagementPolicy: Parallel
  updateStrategy: {type: RollingUpdate}
  revisionHistoryLimit: 2
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete}
`, `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s}
spec:
  replicas: 0
  podManagementPolicy: Parallel
  updateStrategy: {type: RollingUpdate}
  revisionHistoryLimit: 2
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Retain}
  template:
    spec:` + indentYAML(podSpecDefaults, 1) + `
`},
	{"statefulset/on delete", `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s}
spec:
  updateStrategy: {type: OnDelete}
`, `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s}
spec:
  replicas: 1
  podManagementPolicy: OrderedReady
  updateStrategy: {type: OnDelete}
  revisionHistoryLimit: 10
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Retain, whenScaled: Retain}
  template:
    spec:` + indentYAML(podSpecDefaults, 1) + `
`},
	{"daemonset", `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec: {selector: {matchLabels: {app: a}}}
`, `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec:
  selector: {matchLabels: {app: a}}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 1, maxSurge: 0}
  revisionHistoryLimit: 10
  template:
    spec:` + indentYAML(podSpecDefaults, 1) + `
`},
	{"daemonset/on delete", `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec: {updateStrategy: {type: OnDelete}, revisionHistoryLimit: 3}
`, `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec:
  selector: null
  updateStrategy: {type: OnDelete}
  revisionHistoryLimit: 3
  template:
    spec:` + indentYAML(podSpecDefaults, 1) + `
`},
	{"job", `
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
`, `
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec:
  backoffLimit: 6
  completionMode: NonIndexed
  completions: 1
  manualSelector: false
  parallelism: 1
  podReplacementPolicy: TerminatingOrFailed
  suspend: false
  template:
    spec:
      containers:
      - {name: c, image: busybox, imagePullPolicy: Always, terminationMessagePath: /dev/termination-log, terminationMessagePolicy: File}
      dnsPolicy: ClusterFirst
      restartPolicy: Never
      schedulerName: default-scheduler
      securityContext: {}
      terminationGracePeriodSeconds: 30
`},
	{"job/work queue with labels", `
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec:
  parallelism: 3
  template:
    metadata: {labels: {app: q}}
`, `
apiVersion: batch/v1
kind: Job
metadata: {name: j, labels: {app: q}}
spec:
  backoffLimit: 6
  completionMode: NonIndexed
  manualSelector: false
  parallelism: 3
  podReplacementPolicy: TerminatingOrFailed
  suspend: false
  template:
    metadata: {labels: {app: q}}
    spec:` + indentYAML(podSpecDefaults, 1) + `
`},
	{"job/indexed with failure policy", `
apiVersion: batch/v1
kind: Job
metadata: {name: j, labels: {own: "yes"}}
spec:
  completions: 5
  completionMode: Indexed
  backoffLimitPerIndex: 1
  suspend: true
  manualSelector: true
  podFailurePolicy:
    rules:
    - action: Ignore
      onPodConditions: [{type: DisruptionTarget}, {type: Custom, status: "False"}]
  template:
    metadata: {labels: {app: q}}
`, `
apiVersion: batch/v1
kind: Job
metadata: {name: j, labels: {own: "yes"}}
spec:
  backoffLimit: 2147483647
  backoffLimitPerIndex: 1
  completionMode: Indexed
  completions: 5
  manualSelector: true
  parallelism: 1
  podFailurePolicy:
    rules:
    - action: Ignore
      onPodConditions: [{type: DisruptionTarget, status: "True"}, {type: Custom, status: "False"}]
  podReplacementPolicy: Failed
  suspend: true
  template:
    metadata: {labels: {app: q}}
    spec:` + indentYAML(podSpecDefaults, 1) + `
`},
	{"cronjob", `
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: c, image: busybox}]
`, `
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj}
spec:
  schedule: "*/5 * * * *"
  concurrencyPolicy: Allow
  suspend: false
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        metadata: {}
        spec:
          containers:
          - {name: c, image: busybox, imagePullPolicy: Always, terminationMessagePath: /dev/termination-log, terminationMessagePolicy: File}
          dnsPolicy: ClusterFirst
          restartPolicy: OnFailure
          schedulerName: default-scheduler
          securityContext: {}
          terminationGracePeriodSeconds: 30
`},
	{"horizontalpodautoscaler", `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: h
  annotations: {autoscaling.alpha.kubernetes.io/metrics: "[]", keep: "yes"}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: d}
  maxReplicas: 5
`, `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: h
  annotations: {keep: "yes"}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: d}
  minReplicas: 1
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
`},
	{"horizontalpodautoscaler/behavior", `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: h}
spec:
  scaleTargetRef: {kind: Deployment, name: d}
  minReplicas: 2
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: memory, target: {type: AverageValue, averageValue: 1Gi}}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 60}
`, `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: h}
spec:
  scaleTargetRef: {kind: Deployment, name: d}
  minReplicas: 2
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: memory, target: {type: AverageValue, averageValue: 1Gi}}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      selectPolicy: Max
      policies: [{type: Pods, value: 4, periodSeconds: 15}, {type: Percent, value: 100, periodSeconds: 15}]
    scaleDown:
      stabilizationWindowSeconds: 60
      selectPolicy: Max
      policies: [{type: Percent, value: 100, periodSeconds: 15}]
`},
	{"networkpolicy", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 80}, {port: 53, protocol: UDP}]}]
  egress: [{ports: [{port: 443}]}]
`, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 80, protocol: TCP}, {port: 53, protocol: UDP}]}]
  egress: [{ports: [{port: 443, protocol: TCP}]}]
  policyTypes: [Ingress, Egress]
`},
	{"networkpolicy/deny all", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec: {podSelector: {}}
`, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec: {podSelector: {}, policyTypes: [Ingress]}
`},
	{"ingressclass", `
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: ic}
spec:
  controller: example.com/ingress
  parameters: {kind: Params, name: p}
`, `
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: ic}
spec:
  controller: example.com/ingress
  parameters: {kind: Params, name: p, scope: Cluster}
`},
	{"poddisruptionbudget", `
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb}
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: a}
    matchExpressions: [{key: pdb.kubernetes.io/deprecated-v1beta1-empty-selector-match, operator: DoesNotExist}]
`, `
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb}
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: a}
`},
	{"poddisruptionbudget/match none", `
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb}
spec:
  selector:
    matchExpressions: [{key: pdb.kubernetes.io/deprecated-v1beta1-empty-selector-match, operator: Exists}]
`, `
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb}
spec:
  selector:
    matchExpressions: [{key: pdb.kubernetes.io/deprecated-v1beta1-empty-selector-match, operator: Exists}]
`},
	{"rolebinding", `
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rb}
roleRef: {kind: Role, name: r}
subjects:
- {kind: User, name: alice}
- {kind: Group, name: devs}
- {kind: ServiceAccount, name: sa, namespace: ns}
- {kind: User, name: bob, apiGroup: example.com}
`, `
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rb}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}
subjects:
- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
- {kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}
- {kind: ServiceAccount, name: sa, namespace: ns}
- {kind: User, name: bob, apiGroup: example.com}
`},
	{"clusterrolebinding", `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: crb}
roleRef: {kind: ClusterRole, name: view}
subjects: [{kind: Group, name: system:authenticated}]
`, `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: crb}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: Group, name: "system:authenticated", apiGroup: rbac.authorization.k8s.io}]
`},
	{"storageclass", `
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: sc}
provisioner: example.com/disk
`, `
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: sc}
provisioner: example.com/disk
reclaimPolicy: Delete
volumeBindingMode: Immediate
`},
	{"storageclass/explicit", `
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: sc}
provisioner: example.com/disk
reclaimPolicy: Retain
volumeBindingMode: WaitForFirstConsumer
`, `
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: sc}
provisioner: example.com/disk
reclaimPolicy: Retain
volumeBindingMode: WaitForFirstConsumer
`},
	{"priorityclass", `
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
`, `
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
preemptionPolicy: PreemptLowerPriority
`},
	{"endpointslice", `
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: es}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
ports: [{port: 80}, {name: dns, port: 53, protocol: UDP}]
`, `
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: es}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
ports: [{name: "", port: 80, protocol: TCP}, {name: dns, port: 53, protocol: UDP}]
`},
	{"customresourcedefinition", `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - {name: v1beta1, served: true, storage: false, schema: {openAPIV3Schema: {type: object}}}
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
`, `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  conversion: {strategy: None}
  versions:
  - {name: v1beta1, served: true, storage: false, schema: {openAPIV3Schema: {type: object}}}
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
status:
  acceptedNames: {kind: "", plural: ""}
  storedVersions: [v1]
`},
	{"customresourcedefinition/webhook", `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: thing, listKind: Things}
  scope: Cluster
  conversion:
    strategy: Webhook
    webhook:
      conversionReviewVersions: [v1]
      clientConfig: {service: {namespace: ns, name: conv}}
  versions: [{name: v1, served: true, storage: true}]
status:
  storedVersions: [v1alpha1, v1]
`, `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: thing, listKind: Things}
  scope: Cluster
  conversion:
    strategy: Webhook
    webhook:
      conversionReviewVersions: [v1]
      clientConfig: {service: {namespace: ns, name: conv, port: 443}}
  versions: [{name: v1, served: true, storage: true}]
status:
  acceptedNames: {kind: "", plural: ""}
  storedVersions: [v1alpha1, v1]
`},
}

func TestDefaults(t *testing.T) {
	for _, tc := range defaultingCases {
		t.Run(tc.name, func(t *testing.T) {
			obj := decodeManifest(t, tc.in)
			applyDefaults(t, obj)
			if got, want := asYAML(t, obj), asYAML(t, decodeManifest(t, tc.want)); got != want {
				t.Errorf("defaulted object differs\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}

// TestDefaultsIdempotent: defaulting runs on every write, including writes
// of objects read back from storage, so a second pass, in memory or after
// a trip through JSON, must change nothing; in particular nothing a client
// or an earlier pass set is ever replaced.
func TestDefaultsIdempotent(t *testing.T) {
	for _, tc := range defaultingCases {
		t.Run(tc.name, func(t *testing.T) {
			obj := decodeManifest(t, tc.in)
			applyDefaults(t, obj)
			once := asYAML(t, obj)
			applyDefaults(t, obj)
			if twice := asYAML(t, obj); twice != once {
				t.Errorf("second pass changed the object\n--- once\n%s--- twice\n%s", once, twice)
			}
			stored := decodeManifest(t, once)
			applyDefaults(t, stored)
			if again := asYAML(t, stored); again != once {
				t.Errorf("defaulting the stored form changed it\n--- stored\n%s--- again\n%s", once, again)
			}
			want := decodeManifest(t, tc.want)
			applyDefaults(t, want)
			if got := asYAML(t, want); got != asYAML(t, decodeManifest(t, tc.want)) {
				t.Errorf("defaulting the expected object changed it:\n%s", got)
			}
		})
	}
}

// TestMinimalPodAsKubeAPIServer is the acceptance case: the pod below is
// what kube-apiserver 1.33 answers to `kubectl get pod p -o yaml` after
// `kubectl run`-style creation of the minimal manifest, less identity and
// timestamps, and less the fields admission plugins and the pod strategy
// add (those are not defaulting):
//
//	spec.serviceAccountName, spec.serviceAccount: ServiceAccount admission
//	spec.volumes[kube-api-access-*], containers[].volumeMounts: ServiceAccount admission
//	spec.priority: 0, spec.preemptionPolicy: Priority admission
//	spec.tolerations (not-ready/unreachable, 300s): DefaultTolerationSeconds admission
//	status.phase: Pending, status.qosClass: BestEffort: pod strategy (preparePod)
func TestMinimalPodAsKubeAPIServer(t *testing.T) {
	obj := decodeManifest(t, `{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: c, image: busybox}]}}`)
	applyDefaults(t, obj)
	got, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	const want = `apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  containers:
  - image: busybox
    imagePullPolicy: Always
    name: c
    resources: {}
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
  dnsPolicy: ClusterFirst
  enableServiceLinks: true
  restartPolicy: Always
  schedulerName: default-scheduler
  securityContext: {}
  terminationGracePeriodSeconds: 30
status: {}
`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestDefaultersCoverServedKinds(t *testing.T) {
	served := map[string]*Resource{}
	for _, r := range builtins() {
		served[r.Kind] = r
	}
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	for kind, f := range defaulters() {
		r, ok := served[kind]
		if !ok {
			t.Errorf("defaulter for %s, which is not served", kind)
			continue
		}
		// An empty object must not trip the defaulter up either.
		obj, err := scheme.New(r.GVK())
		if err != nil {
			t.Fatal(err)
		}
		f(obj)
		once := asYAML(t, obj)
		f(obj)
		if twice := asYAML(t, obj); twice != once {
			t.Errorf("%s: empty object not stable under defaulting\n%s\n%s", kind, once, twice)
		}
	}
	// Kinds that share a name across groups get the defaulter only for the
	// type it was written for.
	defaulters()["Pod"](&corev1.Service{})
}

func TestRegistryAttachesDefaulters(t *testing.T) {
	reg, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ group, version, resource string }{
		{"", "v1", "pods"}, {"apps", "v1", "deployments"}, {"batch", "v1", "jobs"},
		{"apiextensions.k8s.io", "v1", "customresourcedefinitions"},
	} {
		if r, _ := reg.For("root").Lookup(c.group, c.version, c.resource); r == nil || r.Default == nil {
			t.Errorf("%s/%s: no defaulter attached", c.group, c.resource)
		}
	}
	cm, _ := reg.For("root").Lookup("", "v1", "configmaps")
	if cm.Default != nil {
		t.Error("configmaps: upstream defaults nothing visible, yet a defaulter is attached")
	}
}

// TestDefaultsLeaveSharedMapsAlone: dropping annotations must not write
// through to a map the caller still holds.
func TestDefaultsLeaveSharedMapsAlone(t *testing.T) {
	ann := map[string]string{"pod.alpha.kubernetes.io/init-containers": "[]"}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: ann}}
	defaultPod(p)
	if len(p.Annotations) != 0 || len(ann) != 1 {
		t.Errorf("pod annotations %v, caller's map %v", p.Annotations, ann)
	}
}

func TestImagePullPolicy(t *testing.T) {
	cases := []struct {
		image  string
		always bool
	}{
		{"busybox", true},
		{"busybox:latest", true},
		{"busybox:1.36", false},
		{"library/busybox", true},
		{"docker.io/library/busybox:latest", true},
		{"index.docker.io/busybox", true},
		{"registry.example.com/team/app", true},
		{"registry.example.com:5000/team/app:v2", false},
		{"localhost/app", true},
		{"localhost:5000/app:latest", true},
		{"[::1]:5000/app", true},
		{"Registry.Example.com/app", true},
		{"busybox@" + testDigest, false},
		{"busybox:latest@" + testDigest, true},
		{"busybox:1.36@" + testDigest, false},
		{"app:LATEST", false},
		{"my_app__x--y.z:latest", true},
		// Not parseable, so never "latest".
		{"", false},
		{"Busybox", false},
		{"docker.io/Busybox", false},
		{"busybox:", false},
		{"busybox@sha256:0123", false},
		{"busybox@md5:0123456789abcdef0123456789abcdef", false},
		{"busybox@" + strings.ToUpper(testDigest[:7]) + testDigest[7:], false},
		{"busybox@sha256:" + strings.ToUpper(testDigest[7:]), false},
		{strings.Repeat("a", 64), false},
		{"team/" + strings.Repeat("a", 251), false},
		{"team/" + strings.Repeat("a", 240), true},
		{" busybox", false},
		{"-app", false},
		{"app:" + strings.Repeat("t", 129), false},
	}
	for _, c := range cases {
		if got := imageIsLatest(c.image); got != c.always {
			t.Errorf("imageIsLatest(%q) = %v, want %v", c.image, got, c.always)
		}
	}
}

var defaultsTestScheme = func() *runtime.Scheme {
	s, err := NewScheme()
	if err != nil {
		panic(err)
	}
	return s
}()

// decodeManifest reads a YAML manifest into its typed object, rejecting
// unknown fields so a misspelt expectation cannot pass by vanishing.
func decodeManifest(t *testing.T, doc string) runtime.Object {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		t.Fatal(err)
	}
	obj, err := defaultsTestScheme.New(tm.GroupVersionKind())
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		t.Fatalf("%v in\n%s", err, doc)
	}
	return obj
}

func applyDefaults(t *testing.T, obj runtime.Object) {
	t.Helper()
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	f, ok := defaulters()[kind]
	if !ok {
		t.Fatalf("no defaulter for %s", kind)
	}
	f(obj)
}

// asYAML is the object as a client reads it back.
func asYAML(t *testing.T, obj runtime.Object) string {
	t.Helper()
	y, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(y)
}

// indentYAML shifts a block of YAML lines right by n levels of two spaces.
func indentYAML(block string, n int) string {
	return strings.ReplaceAll(block, "\n", "\n"+strings.Repeat("  ", n))
}

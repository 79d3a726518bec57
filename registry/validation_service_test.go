package registry

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func validService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP},
				{Name: "metrics", Port: 9090, TargetPort: intstr.FromInt32(9090)},
			},
		},
	}
}

func TestValidateService(t *testing.T) {
	runCases(t, validService, validateService, []vcase[*corev1.Service]{
		{name: "valid"},
		{name: "headless without ports", mutate: func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone; s.Spec.Ports = nil }},
		{name: "node port", mutate: func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort; s.Spec.Ports[0].NodePort = 30080 }},
		{name: "external name", mutate: func(s *corev1.Service) {
			s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com."}
		}},
		{name: "external name missing", mutate: func(s *corev1.Service) { s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName} },
			want: []string{"spec.externalName: Required value"}},
		{name: "external name with a cluster IP", mutate: func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalName, s.Spec.ClusterIP = corev1.ServiceTypeExternalName, "db.example.com", "10.96.0.10"
		}, want: []string{"spec.clusterIPs: Forbidden: may not be set for ExternalName services"}},
		{name: "no ports", mutate: func(s *corev1.Service) { s.Spec.Ports = nil },
			want: []string{"spec.ports: Required value"}},
		{name: "port zero", mutate: func(s *corev1.Service) { s.Spec.Ports[0].Port = 0 },
			want: []string{"spec.ports[0].port: Invalid value: 0: " + portRangeMsg}},
		{name: "unnamed ports", mutate: func(s *corev1.Service) { s.Spec.Ports[1].Name = "" },
			want: []string{"spec.ports[1].name: Required value"}},
		{name: "one unnamed port", mutate: func(s *corev1.Service) { s.Spec.Ports = s.Spec.Ports[:1]; s.Spec.Ports[0].Name = "" }},
		{name: "duplicate port names", mutate: func(s *corev1.Service) { s.Spec.Ports[1].Name = "http" },
			want: []string{`spec.ports[1].name: Duplicate value: "http"`}},
		{name: "duplicate ports", mutate: func(s *corev1.Service) { s.Spec.Ports[1].Port = 80 },
			want: []string{`spec.ports[1]: Duplicate value: {"Name":"","Protocol":"TCP","AppProtocol":null,"Port":80,"TargetPort":0,"NodePort":0}`}},
		{name: "same port, other protocol", mutate: func(s *corev1.Service) { s.Spec.Ports[1].Port = 80; s.Spec.Ports[1].Protocol = corev1.ProtocolUDP }},
		{name: "target port name", mutate: func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("web_http") },
			want: []string{`spec.ports[0].targetPort: Invalid value: "web_http": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)`}},
		{name: "target port number", mutate: func(s *corev1.Service) { s.Spec.Ports[1].TargetPort = intstr.FromInt32(70000) },
			want: []string{"spec.ports[1].targetPort: Invalid value: 70000: " + portRangeMsg}},
		{name: "protocol", mutate: func(s *corev1.Service) { s.Spec.Ports[0].Protocol = "ICMP" },
			want: []string{`spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"`}},
		{name: "node port on a cluster IP service", mutate: func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30080 },
			want: []string{"spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"}},
		{name: "type", mutate: func(s *corev1.Service) { s.Spec.Type = "Internal" },
			want: []string{`spec.type: Unsupported value: "Internal": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"`}},
		{name: "session affinity", mutate: func(s *corev1.Service) { s.Spec.SessionAffinity = "Cookie" },
			want: []string{`spec.sessionAffinity: Unsupported value: "Cookie": supported values: "ClientIP", "None"`}},
		{name: "headless node port", mutate: func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort; s.Spec.ClusterIP = "None" },
			want: []string{`spec.clusterIPs[0]: Invalid value: "None": may not be set to 'None' for NodePort services`}},
		{name: "cluster IPs out of step", mutate: func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.10"; s.Spec.ClusterIPs = []string{"10.96.0.11"} },
			want: []string{`spec.clusterIPs: Invalid value: ["10.96.0.11"]: first value must match ` + "`clusterIP`"}},
		{name: "bad cluster IP", mutate: func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.300" },
			want: []string{`spec.clusterIPs[0]: Invalid value: "10.96.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)`}},
		{name: "external traffic policy on a cluster IP service", mutate: func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal },
			want: []string{`spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services`}},
		{name: "loopback external IP", mutate: func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"127.0.0.1"} },
			want: []string{`spec.externalIPs[0]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)`}},
	})
}

func TestValidateServiceUpdate(t *testing.T) {
	old := validService()
	old.Spec.Type = corev1.ServiceTypeNodePort
	old.Spec.ClusterIP, old.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.10"}
	old.Spec.Ports[0].NodePort, old.Spec.Ports[1].NodePort = 30080, 30090
	old.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	old.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	old.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)

	s := old.DeepCopy()
	s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.99", nil
	expectErrs(t, validateService(s, old), `spec.clusterIPs[0]: Invalid value: ["10.96.0.99"]: may not change once set`)

	// Resubmitting the original manifest keeps what was allocated.
	s = old.DeepCopy()
	s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.Ports[0].NodePort = "", nil, 0
	s.Labels = map[string]string{"x": "y"}
	expectErrs(t, validateService(s, old))

	// Back to ClusterIP: the allocated node ports go with the old type.
	s = old.DeepCopy()
	s.Spec.Type = corev1.ServiceTypeClusterIP
	expectErrs(t, validateService(s, old))
	// ...but not node ports the user adds.
	s.Spec.Ports[0].NodePort = 31000
	expectErrs(t, validateService(s, old), "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
		"spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'")

	// To ExternalName: the address and families go too.
	s = old.DeepCopy()
	s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "example.com"
	expectErrs(t, validateService(s, old))
}

func TestValidateEndpointSlice(t *testing.T) {
	valid := func() *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "web-abc", Namespace: "default"},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.5"}, NodeName: ptr.To("node-1")}},
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
		}
	}
	runCases(t, valid, validateEndpointSlice, []vcase[*discoveryv1.EndpointSlice]{
		{name: "valid"},
		{name: "address type", mutate: func(e *discoveryv1.EndpointSlice) { e.AddressType = "IPv5" },
			want: []string{`addressType: Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"`}},
		{name: "no addresses", mutate: func(e *discoveryv1.EndpointSlice) { e.Endpoints[0].Addresses = nil },
			want: []string{"endpoints[0].addresses: Required value: must contain at least 1 address"}},
		{name: "not an address", mutate: func(e *discoveryv1.EndpointSlice) { e.Endpoints[0].Addresses = []string{"10.0.0.256"} },
			want: []string{`endpoints[0].addresses[0]: Invalid value: "10.0.0.256": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)`}},
		{name: "the server's own listen address", mutate: func(e *discoveryv1.EndpointSlice) { e.Endpoints[0].Addresses = []string{"127.0.0.1"} }},
		{name: "duplicate port names", mutate: func(e *discoveryv1.EndpointSlice) { e.Ports = append(e.Ports, e.Ports[0]) },
			want: []string{`ports[1].name: Duplicate value: "http"`}},
	})
}

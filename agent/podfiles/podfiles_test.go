package podfiles

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

var testNode = Node{Name: "n1", IP: "192.168.1.10", Allocatable: corev1.ResourceList{
	corev1.ResourceCPU:              resource.MustParse("4"),
	corev1.ResourceMemory:           resource.MustParse("8Gi"),
	corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
}}

func testPod(vols ...corev1.Volume) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: types.UID("uid-web"),
			Labels:      map[string]string{"app": "web", "tier": `fr"ont`},
			Annotations: map[string]string{"note": "a\nb"}},
		Spec: corev1.PodSpec{NodeName: "n1", ServiceAccountName: "sa", Volumes: vols,
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

// podDir returns a pod directory that is unmounted and removed after
// the test, since tmpfs mounts in it would defeat t.TempDir's cleanup.
func podDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "pod")
	t.Cleanup(func() {
		if err := Cleanup(d); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	return d
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustPrepare(t *testing.T, cs *fake.Clientset, pod *corev1.Pod, dir string) map[string]string {
	t.Helper()
	paths, err := Prepare(context.Background(), cs, pod, dir, testNode)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return paths
}

func mountError1(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	return e
}

func TestEmptyDirDisk(t *testing.T) {
	dir := podDir(t)
	pod := testPod(corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	paths := mustPrepare(t, fake.NewClientset(), pod, dir)
	want := filepath.Join(dir, "volumes", "kubernetes.io~empty-dir", "scratch")
	if paths["scratch"] != want {
		t.Fatalf("path = %q, want %q", paths["scratch"], want)
	}
	info, err := os.Stat(want)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o777 {
		t.Errorf("mode = %v, want 0777", info.Mode().Perm())
	}
	// Contents survive a re-sync.
	if err := os.WriteFile(filepath.Join(want, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustPrepare(t, fake.NewClientset(), pod, dir)
	if got := readFile(t, filepath.Join(want, "keep")); got != "x" {
		t.Errorf("file after re-sync = %q", got)
	}
	if err := Cleanup(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod dir still there after Cleanup: %v", err)
	}
}

func TestEmptyDirMemory(t *testing.T) {
	if !canMount() {
		t.Skip("mounting tmpfs needs root; the memory-backed emptyDir is not tested in this run")
	}
	dir := podDir(t)
	pod := testPod(corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
		Medium: corev1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse("2Mi"))}}})
	paths := mustPrepare(t, fake.NewClientset(), pod, dir)
	mounted, err := isMountPoint(paths["mem"])
	if err != nil || !mounted {
		t.Fatalf("emptyDir not a mount point: %v %v", mounted, err)
	}
	mi := readFile(t, "/proc/self/mountinfo")
	var line string
	for _, l := range strings.Split(mi, "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == paths["mem"] {
			line = l
		}
	}
	if !strings.Contains(line, "tmpfs") || !strings.Contains(line, "size=2048k") {
		t.Errorf("mount = %q, want a 2Mi tmpfs", line)
	}
	// A second sync must not stack another mount.
	mustPrepare(t, fake.NewClientset(), pod, dir)
	if n := strings.Count(readFile(t, "/proc/self/mountinfo"), " "+paths["mem"]+" "); n != 1 {
		t.Errorf("%d mounts on the emptyDir after re-sync, want 1", n)
	}
	if err := Cleanup(dir); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(readFile(t, "/proc/self/mountinfo"), dir) {
		t.Error("tmpfs still mounted after Cleanup")
	}
}

func TestConfigMapVolume(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns"},
		Data: map[string]string{"a.conf": "A", "b.conf": "B"}, BinaryData: map[string][]byte{"bin": {0, 1}}}
	cs := fake.NewClientset(cm)
	dir := podDir(t)

	pod := testPod(
		corev1.Volume{Name: "all", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		corev1.Volume{Name: "some", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, DefaultMode: ptr.To[int32](0o600),
			Items: []corev1.KeyToPath{{Key: "a.conf", Path: "sub/x.conf", Mode: ptr.To[int32](0o640)}, {Key: "bin", Path: "bin"}}}}},
	)
	paths := mustPrepare(t, cs, pod, dir)
	all := paths["all"]
	if got := readFile(t, filepath.Join(all, "a.conf")) + readFile(t, filepath.Join(all, "b.conf")); got != "AB" {
		t.Errorf("all: got %q", got)
	}
	if got := readFile(t, filepath.Join(all, "bin")); got != "\x00\x01" {
		t.Errorf("binaryData: got %q", got)
	}
	if target, err := os.Readlink(filepath.Join(all, "a.conf")); err != nil || target != "..data/a.conf" {
		t.Errorf("a.conf link = %q, %v; want ..data/a.conf", target, err)
	}
	some := paths["some"]
	if got := readFile(t, filepath.Join(some, "sub", "x.conf")); got != "A" {
		t.Errorf("item: got %q", got)
	}
	if _, err := os.Lstat(filepath.Join(some, "b.conf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("b.conf projected although not an item: %v", err)
	}
	for p, want := range map[string]os.FileMode{"sub/x.conf": 0o640, "bin": 0o600} {
		info, err := os.Stat(filepath.Join(some, p))
		if err != nil || info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", p, info.Mode().Perm(), err, want)
		}
	}

	// Re-sync with nothing changed keeps the same data directory.
	before, _ := os.Readlink(filepath.Join(all, "..data"))
	mustPrepare(t, cs, pod, dir)
	after, _ := os.Readlink(filepath.Join(all, "..data"))
	if before == "" || before != after {
		t.Errorf("unchanged configMap rewritten: %q -> %q", before, after)
	}

	// An update appears in place, and a removed key disappears.
	cm.Data = map[string]string{"a.conf": "A2"}
	if _, err := cs.CoreV1().ConfigMaps("ns").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	mustPrepare(t, cs, pod, dir)
	if got := readFile(t, filepath.Join(all, "a.conf")); got != "A2" {
		t.Errorf("after update: %q", got)
	}
	if _, err := os.Lstat(filepath.Join(all, "b.conf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed key still visible: %v", err)
	}
	if _, err := os.Stat(filepath.Join(all, before)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old data dir %s not removed: %v", before, err)
	}
}

func TestConfigMapVolumeErrors(t *testing.T) {
	cs := fake.NewClientset(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "have", Namespace: "ns"}, Data: map[string]string{"k": "v"}})
	for _, tc := range []struct {
		name string
		src  corev1.ConfigMapVolumeSource
		want string // "" = no error
	}{
		{"missing", corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}},
			`MountVolume.SetUp failed for volume "v" : configmap "cfg" not found`},
		{"missing optional", corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Optional: ptr.To(true)}, ""},
		{"missing key", corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "have"},
			Items: []corev1.KeyToPath{{Key: "nope", Path: "p"}}},
			`MountVolume.SetUp failed for volume "v" : configmap references non-existent config key: nope`},
		{"missing key optional", corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "have"},
			Items: []corev1.KeyToPath{{Key: "nope", Path: "p"}}, Optional: ptr.To(true)}, ""},
		{"bad path", corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "have"},
			Items: []corev1.KeyToPath{{Key: "k", Path: "../x"}}},
			`MountVolume.SetUp failed for volume "v" : invalid path "../x": must not start with '..'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src
			pod := testPod(corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &src}})
			paths, err := Prepare(context.Background(), cs, pod, podDir(t), testNode)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				entries, _ := os.ReadDir(paths["v"])
				for _, e := range entries {
					if !strings.HasPrefix(e.Name(), "..") {
						t.Errorf("optional volume has %s", e.Name())
					}
				}
				return
			}
			e := mountError1(t, err)
			if e.Reason != ReasonFailedMount || e.Message != tc.want || e.Volume != "v" {
				t.Errorf("got %+v, want FailedMount %q", e, tc.want)
			}
			if _, ok := paths["v"]; ok {
				t.Error("failed volume returned a path")
			}
		})
	}
}

func TestSecretVolume(t *testing.T) {
	cs := fake.NewClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"}, Data: map[string][]byte{"pw": []byte("hunter2")}})
	dir := podDir(t)
	pod := testPod(
		corev1.Volume{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s", DefaultMode: ptr.To[int32](0o400)}}},
		corev1.Volume{Name: "gone", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "nope"}}},
		corev1.Volume{Name: "key", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s",
			Items: []corev1.KeyToPath{{Key: "user", Path: "u"}}}}},
	)
	paths, err := Prepare(context.Background(), cs, pod, dir, testNode)
	if got := readFile(t, filepath.Join(paths["sec"], "pw")); got != "hunter2" {
		t.Errorf("pw = %q", got)
	}
	if info, err := os.Stat(filepath.Join(paths["sec"], "pw")); err != nil || info.Mode().Perm() != 0o400 {
		t.Errorf("pw mode: %v %v", info.Mode(), err)
	}
	if canMount() {
		if m, err := isMountPoint(paths["sec"]); err != nil || !m {
			t.Errorf("secret volume not on tmpfs: %v %v", m, err)
		}
	}
	// Both failures are reported, each with its own volume.
	var msgs []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		msgs = append(msgs, mountError1(t, e).Message)
	}
	want := []string{`MountVolume.SetUp failed for volume "gone" : secret "nope" not found`,
		`MountVolume.SetUp failed for volume "key" : references non-existent secret key: user`}
	if strings.Join(msgs, "|") != strings.Join(want, "|") {
		t.Errorf("errors = %q, want %q", msgs, want)
	}
}

func TestDownwardAPIVolume(t *testing.T) {
	dir := podDir(t)
	pod := testPod(corev1.Volume{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
		Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
			{Path: "app", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}},
			{Path: "meta/name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
			{Path: "uid", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}},
			{Path: "mem", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
			{Path: "cpu", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "requests.cpu"}},
		}}}})
	pod.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}
	cs := fake.NewClientset()
	paths := mustPrepare(t, cs, pod, dir)
	v := paths["info"]
	for file, want := range map[string]string{
		"labels":      "app=\"web\"\ntier=\"fr\\\"ont\"",
		"annotations": `note="a\nb"`,
		"app":         "web",
		"meta/name":   "web",
		"uid":         "uid-web",
		"mem":         "8192", // node allocatable, as the container has no limit
		"cpu":         "1",    // rounded up
	} {
		if got := readFile(t, filepath.Join(v, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	// Labels change: the file follows.
	pod.Labels["app"] = "web2"
	mustPrepare(t, cs, pod, dir)
	if got := readFile(t, filepath.Join(v, "app")); got != "web2" {
		t.Errorf("app after relabel = %q", got)
	}
}

// tokenServer answers TokenRequests with numbered tokens valid for the
// requested time from *now.
type tokenServer struct {
	now      *time.Time
	calls    int
	last     *authenticationv1.TokenRequest
	sa       string
	failNext bool
}

func (s *tokenServer) install(cs *fake.Clientset) {
	cs.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca := a.(k8stesting.CreateAction)
		if ca.GetSubresource() != "token" {
			return false, nil, nil
		}
		if s.failNext {
			s.failNext = false
			return true, nil, errors.New("apiserver down")
		}
		s.calls++
		s.sa = ca.(k8stesting.CreateActionImpl).Name
		tr := ca.GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		s.last = tr.DeepCopy()
		tr.Status.Token = fmt.Sprintf("token-%d", s.calls)
		tr.Status.ExpirationTimestamp = metav1.NewTime(s.now.Add(time.Duration(*tr.Spec.ExpirationSeconds) * time.Second))
		return true, tr, nil
	})
}

func TestProjectedVolumeAndTokenRefresh(t *testing.T) {
	cs := fake.NewClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt", Namespace: "ns"}, Data: map[string]string{"ca.crt": "CA"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"}, Data: map[string][]byte{"k": []byte("S")}},
	)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ts := &tokenServer{now: &now}
	ts.install(cs)
	pod := testPod(corev1.Volume{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To[int32](0o644),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", Audience: "vault"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		}}}})
	dir := podDir(t)
	sync := func() string {
		t.Helper()
		paths, err := prepare(context.Background(), cs, pod, dir, testNode, func() time.Time { return now })
		if err != nil {
			t.Fatalf("prepare: %v", err)
		}
		return paths["kube-api-access"]
	}
	v := sync()
	for file, want := range map[string]string{"token": "token-1", "ca.crt": "CA", "k": "S", "namespace": "ns"} {
		if got := readFile(t, filepath.Join(v, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if ts.sa != "sa" {
		t.Errorf("token requested for service account %q, want sa", ts.sa)
	}
	spec := ts.last.Spec
	if len(spec.Audiences) != 1 || spec.Audiences[0] != "vault" || spec.ExpirationSeconds == nil || *spec.ExpirationSeconds != 3600 ||
		spec.BoundObjectRef == nil || spec.BoundObjectRef.Kind != "Pod" || spec.BoundObjectRef.Name != "web" || spec.BoundObjectRef.UID != "uid-web" {
		t.Errorf("token request spec = %+v", spec)
	}

	now = now.Add(47 * time.Minute) // under 80% of the hour
	if sync(); ts.calls != 1 {
		t.Fatalf("token re-requested before 80%% of its lifetime (%d calls)", ts.calls)
	}
	now = now.Add(2 * time.Minute) // 49m: past 48m
	sync()
	if ts.calls != 2 || readFile(t, filepath.Join(v, "token")) != "token-2" {
		t.Fatalf("token not refreshed at 49m: calls=%d token=%q", ts.calls, readFile(t, filepath.Join(v, "token")))
	}
	// A failed refresh keeps the unexpired token rather than failing.
	now = now.Add(50 * time.Minute)
	ts.failNext = true
	sync()
	if got := readFile(t, filepath.Join(v, "token")); got != "token-2" {
		t.Errorf("token after failed refresh = %q", got)
	}
	if sync(); readFile(t, filepath.Join(v, "token")) != "token-3" {
		t.Errorf("token not refreshed after the API server came back")
	}

	// Once expired and unrenewable, the volume fails.
	now = now.Add(2 * time.Hour)
	ts.failNext = true
	_, err := prepare(context.Background(), cs, pod, dir, testNode, func() time.Time { return now })
	if e := mountError1(t, err); !strings.Contains(e.Message, `MountVolume.SetUp failed for volume "kube-api-access" : failed to fetch token`) {
		t.Errorf("expired token error = %q", e.Message)
	}
}

func TestProjectedClusterTrustBundleUnsupported(t *testing.T) {
	pod := testPod(corev1.Volume{Name: "ctb", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{Name: ptr.To("b"), Path: "b.pem"}}}}}})
	_, err := Prepare(context.Background(), fake.NewClientset(), pod, podDir(t), testNode)
	if e := mountError1(t, err); !strings.Contains(e.Message, "clusterTrustBundle projections are not supported") {
		t.Errorf("got %q", e.Message)
	}
}

// TestAtomicUpdate reads the volume while it is rewritten, as a
// container would through ..data, and checks that a reader never sees
// one file from the old payload and another from the new one.
func TestAtomicUpdate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	gen := func(i int) map[string]file {
		v := []byte(fmt.Sprintf("gen-%d", i))
		return map[string]file{"a": {data: v, mode: 0o644}, "b": {data: v, mode: 0o644}}
	}
	if err := writeAtomic(dir, gen(0), time.Now()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		reads := 0
		for {
			select {
			case <-done:
				if reads == 0 {
					result <- errors.New("reader never completed a read")
					return
				}
				result <- nil
				return
			default:
			}
			data, err := filepath.EvalSymlinks(filepath.Join(dir, "..data"))
			if err != nil {
				continue
			}
			a, errA := os.ReadFile(filepath.Join(data, "a"))
			b, errB := os.ReadFile(filepath.Join(data, "b"))
			if errA != nil || errB != nil {
				continue // that generation was removed meanwhile
			}
			if string(a) != string(b) {
				result <- fmt.Errorf("mixed payload: a=%q b=%q", a, b)
				return
			}
			reads++
		}
	}()
	for i := 1; i <= 200; i++ {
		if err := writeAtomic(dir, gen(i), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "a")); got != "gen-200" {
		t.Errorf("final a = %q", got)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	// ..data, one timestamped dir, a and b.
	if len(names) != 4 {
		t.Errorf("volume holds %v, want ..data, one data dir, a, b", names)
	}
}

func TestHostPath(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	hp := func(name, path string, typ corev1.HostPathType) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &typ}}}
	}
	for _, tc := range []struct {
		vol     corev1.Volume
		wantErr string
		check   func() bool
	}{
		{vol: hp("unset", filepath.Join(base, "nothing"), corev1.HostPathUnset)},
		{vol: hp("mkdir", filepath.Join(base, "new", "dir"), corev1.HostPathDirectoryOrCreate), check: func() bool {
			info, err := os.Stat(filepath.Join(base, "new", "dir"))
			return err == nil && info.IsDir()
		}},
		{vol: hp("mkfile", filepath.Join(base, "newfile"), corev1.HostPathFileOrCreate), check: func() bool {
			info, err := os.Stat(filepath.Join(base, "newfile"))
			return err == nil && info.Mode().IsRegular()
		}},
		{vol: hp("file-no-parent", filepath.Join(base, "nodir", "f"), corev1.HostPathFileOrCreate), wantErr: "creating hostPath"},
		{vol: hp("dir", base, corev1.HostPathDirectory)},
		{vol: hp("notdir", file, corev1.HostPathDirectory),
			wantErr: fmt.Sprintf("hostPath type check failed: %s is not a directory, it's a Directory", file)},
		{vol: hp("missing", filepath.Join(base, "x"), corev1.HostPathFile),
			wantErr: fmt.Sprintf("hostPath type check failed, %s is not a file, unable to determine its type", filepath.Join(base, "x"))},
		{vol: hp("sock", file, corev1.HostPathSocket), wantErr: "is not a socket file"},
		{vol: hp("chr", "/dev/null", corev1.HostPathCharDev)},
		{vol: hp("blk", "/dev/null", corev1.HostPathBlockDev), wantErr: "is not a block device"},
		{vol: hp("dotdot", base+"/../x", corev1.HostPathUnset), wantErr: "must not contain '..'"},
	} {
		t.Run(tc.vol.Name, func(t *testing.T) {
			paths, err := Prepare(context.Background(), fake.NewClientset(), testPod(tc.vol), podDir(t), testNode)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if paths[tc.vol.Name] != tc.vol.HostPath.Path {
				t.Errorf("path = %q", paths[tc.vol.Name])
			}
			if tc.check != nil && !tc.check() {
				t.Error("path not created as its type asks")
			}
		})
	}
}

func TestPersistentVolumeClaim(t *testing.T) {
	data := t.TempDir()
	objs := []runtime.Object{
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "bound", Namespace: "ns", UID: "pvc-1"},
			Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv1"}, Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}},
		&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv1"}, Spec: corev1.PersistentVolumeSpec{
			ClaimRef:               &corev1.ObjectReference{Namespace: "ns", Name: "bound", UID: "pvc-1"},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: data}}}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "local", Namespace: "ns", UID: "pvc-2"},
			Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv2"}, Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}},
		&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv2"}, Spec: corev1.PersistentVolumeSpec{
			ClaimRef:               &corev1.ObjectReference{Namespace: "ns", Name: "local", UID: "pvc-2"},
			PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: data}}}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "pending", Namespace: "ns"},
			Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}},
	}
	claim := func(name, claim string, ro bool) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: ro}}}
	}
	pod := testPod(claim("data", "bound", true), claim("loc", "local", false), claim("wait", "pending", false), claim("none", "absent", false))
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "loc", MountPath: "/loc"}}
	paths, err := Prepare(context.Background(), fake.NewClientset(objs...), pod, podDir(t), testNode)
	if paths["data"] != data || paths["loc"] != data {
		t.Errorf("paths = %v", paths)
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	for _, want := range []string{
		`MountVolume.SetUp failed for volume "wait" : error processing PVC ns/pending: PVC is not bound`,
		`MountVolume.SetUp failed for volume "none" : persistentvolumeclaim "absent" not found`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	mounts, err := Mounts(pod, &pod.Spec.Containers[0], paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 2 || !mounts[0].ReadOnly || mounts[1].ReadOnly || mounts[0].ContainerPath != "/data" {
		t.Errorf("mounts = %+v; want /data read-only (claim readOnly), /loc read-write", mounts)
	}
}

func TestMountsSubPath(t *testing.T) {
	dir := podDir(t)
	outside := t.TempDir()
	cs := fake.NewClientset(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns"}, Data: map[string]string{"app.conf": "X"}})
	pod := testPod(
		corev1.Volume{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
	)
	paths := mustPrepare(t, cs, pod, dir)
	work := paths["work"]
	env := []EnvVar{{Name: "POD", Value: "web"}, {Name: "EMPTY", Value: ""}}
	c := &pod.Spec.Containers[0]
	c.VolumeMounts = []corev1.VolumeMount{
		{Name: "work", MountPath: "/w"},
		{Name: "work", MountPath: "/logs", SubPathExpr: "logs/$(POD)"},
		{Name: "cfg", MountPath: "/etc/app.conf", SubPath: "app.conf"},
	}
	mounts, err := Mounts(pod, c, paths, env)
	if err != nil {
		t.Fatal(err)
	}
	if mounts[0].HostPath != work || mounts[0].ReadOnly {
		t.Errorf("whole volume mount = %+v", mounts[0])
	}
	logs := filepath.Join(work, "logs", "web")
	if mounts[1].HostPath != logs {
		t.Errorf("subPathExpr mount = %q, want %q", mounts[1].HostPath, logs)
	}
	if info, err := os.Stat(logs); err != nil || !info.IsDir() || info.Mode().Perm() != 0o777 {
		t.Errorf("subpath not created with the volume's mode: %v %v", info, err)
	}
	if !mounts[2].ReadOnly || !strings.HasPrefix(mounts[2].HostPath, filepath.Join(paths["cfg"], "..")) || readFile(t, mounts[2].HostPath) != "X" {
		t.Errorf("configMap subPath mount = %+v, want the read-only file in its data dir", mounts[2])
	}

	if err := os.Symlink(outside, filepath.Join(work, "evil")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mount corev1.VolumeMount
		want  string
	}{
		{corev1.VolumeMount{Name: "work", MountPath: "/x", SubPath: "../../etc"}, "unable to provision SubPath `../../etc`: must not contain '..'"},
		{corev1.VolumeMount{Name: "work", MountPath: "/x", SubPath: "/etc"}, "error SubPath `/etc` must not be an absolute path"},
		{corev1.VolumeMount{Name: "work", MountPath: "/x", SubPath: "evil/sub"}, `subPath "evil/sub" of volumeMount "work" of container "c" resolves outside of its volume`},
		{corev1.VolumeMount{Name: "work", MountPath: "/x", SubPathExpr: "$(EMPTY)/$(NOPE)"}, "missing value for EMPTY, NOPE"},
		{corev1.VolumeMount{Name: "gone", MountPath: "/x"}, `cannot find volume "gone" to mount into container "c"`},
	} {
		c.VolumeMounts = []corev1.VolumeMount{tc.mount}
		_, err := Mounts(pod, c, paths, env)
		var e *Error
		if !errors.As(err, &e) || e.Reason != ReasonCreateContainerConfigError || e.Message != tc.want {
			t.Errorf("%+v: err = %v, want CreateContainerConfigError %q", tc.mount, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "sub")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("escape attempt created a directory outside the volume: %v", err)
	}
}

func TestCleanupMissingDir(t *testing.T) {
	if err := Cleanup(filepath.Join(t.TempDir(), "never")); err != nil {
		t.Errorf("Cleanup of a missing dir: %v", err)
	}
}

// Package kubernetes_test checks the manifests in deploy/kubernetes against
// each other, against beat's configuration and against the Dockerfile: the
// things `kubectl apply` accepts but that would leave beat broken, unsafe or
// unmonitored (a port the probes miss, a grace period shorter than beat's
// shutdown, a schedule that does not validate, a pod the restricted Pod
// Security Standard refuses).
//
// Each check is a function from the loaded manifests to the problems it
// finds, each naming the file and the field. TestManifests runs them on the
// files; TestChecksNotice breaks the loaded manifests in memory, one way at a
// time, and makes sure the check meant to notice does.
package kubernetes_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/beatlock/beat/config"
	"github.com/beatlock/beat/tasks"
)

const (
	dir            = "."
	kustomization  = "kustomization.yaml"
	optionalFile   = "servicemonitor.yaml" // needs the Prometheus Operator's CRD, so not in resources
	dockerfile     = "../../Dockerfile"
	imageSchedule  = "../schedule.yaml" // what the Dockerfile copies into the image
	imageScheduleS = "deploy/schedule.yaml"
	beatContainer  = "beat"
	httpPortName   = "http"
	replicas       = 3
	// graceMargin is how much longer than shutdown_timeout the kubelet must
	// wait before SIGKILL: beat gives cancelled runs up to 3s more, then
	// releases its locks.
	graceMargin = 5 * time.Second
)

// ---- the loaded manifests ----

type header struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   meta   `yaml:"metadata"`
}

type meta struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type labelSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []struct {
		Key      string   `yaml:"key"`
		Operator string   `yaml:"operator"`
		Values   []string `yaml:"values"`
	} `yaml:"matchExpressions"`
}

type configMap struct {
	header `yaml:",inline"`
	Data   map[string]string `yaml:"data"`
}

type deployment struct {
	header `yaml:",inline"`
	Spec   struct {
		Replicas *int          `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Template struct {
			Metadata meta    `yaml:"metadata"`
			Spec     podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int64              `yaml:"terminationGracePeriodSeconds"`
	AutomountServiceAccountToken  *bool               `yaml:"automountServiceAccountToken"`
	HostNetwork                   bool                `yaml:"hostNetwork"`
	HostPID                       bool                `yaml:"hostPID"`
	HostIPC                       bool                `yaml:"hostIPC"`
	SecurityContext               *podSecurityContext `yaml:"securityContext"`
	TopologySpreadConstraints     []struct {
		MaxSkew           int            `yaml:"maxSkew"`
		TopologyKey       string         `yaml:"topologyKey"`
		WhenUnsatisfiable string         `yaml:"whenUnsatisfiable"`
		LabelSelector     *labelSelector `yaml:"labelSelector"`
	} `yaml:"topologySpreadConstraints"`
	InitContainers []container `yaml:"initContainers"`
	Containers     []container `yaml:"containers"`
	Volumes        []volume    `yaml:"volumes"`
}

type podSecurityContext struct {
	RunAsNonRoot   *bool           `yaml:"runAsNonRoot"`
	RunAsUser      *int64          `yaml:"runAsUser"`
	RunAsGroup     *int64          `yaml:"runAsGroup"`
	SeccompProfile *seccompProfile `yaml:"seccompProfile"`
}

type seccompProfile struct {
	Type string `yaml:"type"`
}

type securityContext struct {
	RunAsNonRoot             *bool           `yaml:"runAsNonRoot"`
	RunAsUser                *int64          `yaml:"runAsUser"`
	RunAsGroup               *int64          `yaml:"runAsGroup"`
	SeccompProfile           *seccompProfile `yaml:"seccompProfile"`
	AllowPrivilegeEscalation *bool           `yaml:"allowPrivilegeEscalation"`
	Privileged               *bool           `yaml:"privileged"`
	ReadOnlyRootFilesystem   *bool           `yaml:"readOnlyRootFilesystem"`
	Capabilities             *struct {
		Add  []string `yaml:"add"`
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Env   []envVar `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		HostPort      int    `yaml:"hostPort"`
	} `yaml:"ports"`
	VolumeMounts   []volumeMount `yaml:"volumeMounts"`
	ReadinessProbe *probe        `yaml:"readinessProbe"`
	LivenessProbe  *probe        `yaml:"livenessProbe"`
	StartupProbe   *probe        `yaml:"startupProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *securityContext `yaml:"securityContext"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	SubPath   string `yaml:"subPath"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
	} `yaml:"valueFrom"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"` // a number or a port name
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

type volume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name  string `yaml:"name"`
		Items []any  `yaml:"items"`
	} `yaml:"configMap"`
	EmptyDir *struct {
		Medium string `yaml:"medium"`
	} `yaml:"emptyDir"`
	Other map[string]any `yaml:",inline"` // every other volume source
}

type podDisruptionBudget struct {
	header `yaml:",inline"`
	Spec   struct {
		MaxUnavailable any           `yaml:"maxUnavailable"`
		MinAvailable   any           `yaml:"minAvailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type service struct {
	header `yaml:",inline"`
	Spec   struct {
		Type     string            `yaml:"type"`
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type serviceMonitor struct {
	header `yaml:",inline"`
	Spec   struct {
		Selector  labelSelector `yaml:"selector"`
		Endpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"endpoints"`
	} `yaml:"spec"`
}

// bundle is everything the checks look at.
type bundle struct {
	resources []string            // kustomization.yaml's resources
	kustHead  header              // kustomization.yaml's apiVersion and kind
	files     []string            // the object files: every manifest but kustomization.yaml
	objects   map[string][]header // per file, each document's header
	fileOf    map[string]string   // kind -> the file holding it

	configMap *configMap
	deploy    *deployment
	pdb       *podDisruptionBudget
	service   *service
	monitor   *serviceMonitor

	dockerfile    string
	imageSchedule []byte
}

// load reads the manifests in dir, the Dockerfile and the image's schedule.
// It fails the test only on what makes checking impossible: unreadable or
// unparsable files, a missing object kind.
func load(t testing.TB) *bundle {
	t.Helper()
	b := &bundle{objects: map[string][]header{}, fileOf: map[string]string{}}

	data, err := os.ReadFile(filepath.Join(dir, kustomization))
	if err != nil {
		t.Fatal(err)
	}
	var kust struct {
		header    `yaml:",inline"`
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(data, &kust); err != nil {
		t.Fatalf("%s: %v", kustomization, err)
	}
	b.resources, b.kustHead = kust.Resources, kust.header

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == kustomization || !isManifest(name) {
			continue
		}
		b.files = append(b.files, name)
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc yaml.Node
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(doc.Content) == 0 || doc.Content[0].Kind == 0 {
				continue // an empty document, as after a trailing ---
			}
			var h header
			if err := doc.Decode(&h); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			b.objects[name] = append(b.objects[name], h)
			if _, seen := b.fileOf[h.Kind]; seen {
				continue // the one-object-per-kind check reports it
			}
			var into any
			switch h.Kind {
			case "ConfigMap":
				b.configMap = new(configMap)
				into = b.configMap
			case "Deployment":
				b.deploy = new(deployment)
				into = b.deploy
			case "PodDisruptionBudget":
				b.pdb = new(podDisruptionBudget)
				into = b.pdb
			case "Service":
				b.service = new(service)
				into = b.service
			case "ServiceMonitor":
				b.monitor = new(serviceMonitor)
				into = b.monitor
			default:
				continue
			}
			b.fileOf[h.Kind] = name
			if err := doc.Decode(into); err != nil {
				t.Fatalf("%s: %s %s: %v", name, h.Kind, h.Metadata.Name, err)
			}
		}
	}
	for _, kind := range []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceMonitor"} {
		if b.fileOf[kind] == "" {
			t.Fatalf("%s: no %s in any manifest", dir, kind)
		}
	}
	if beat(b) == nil {
		t.Fatalf("%s: spec.template.spec.containers: no container named %q", b.fileOf["Deployment"], beatContainer)
	}

	df, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	b.dockerfile = string(df)
	if b.imageSchedule, err = os.ReadFile(imageSchedule); err != nil {
		t.Fatal(err)
	}
	return b
}

func isManifest(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".json")
}

// ---- helpers ----

func beat(b *bundle) *container {
	cs := b.deploy.Spec.Template.Spec.Containers
	for i := range cs {
		if cs[i].Name == beatContainer {
			return &cs[i]
		}
	}
	return nil
}

func pod(b *bundle) *podSpec { return &b.deploy.Spec.Template.Spec }

func podLabels(b *bundle) map[string]string { return b.deploy.Spec.Template.Metadata.Labels }

// containerField names a field of a container (not an init container) in
// messages.
func containerField(c *container, field string) string {
	return fmt.Sprintf("spec.template.spec.containers[%s].%s", c.Name, field)
}

// anyContainer is a container or an init container, and how messages name
// it.
type anyContainer struct {
	*container
	at string // spec.template.spec.initContainers[NAME] or ...containers[NAME]
}

func (c anyContainer) field(f string) string { return c.at + "." + f }

// allContainers is every init container and container of the pod.
func allContainers(p *podSpec) []anyContainer {
	var cs []anyContainer
	for i := range p.InitContainers {
		cs = append(cs, anyContainer{&p.InitContainers[i], "spec.template.spec.initContainers[" + p.InitContainers[i].Name + "]"})
	}
	for i := range p.Containers {
		cs = append(cs, anyContainer{&p.Containers[i], "spec.template.spec.containers[" + p.Containers[i].Name + "]"})
	}
	return cs
}

func env(c *container, name string) (value string, from bool, ok bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, e.ValueFrom != nil, true
		}
	}
	return "", false, false
}

// httpPort is the number of the container port named http, or 0.
func httpPort(c *container) int {
	for _, p := range c.Ports {
		if p.Name == httpPortName {
			return p.ContainerPort
		}
	}
	return 0
}

// resolvePort turns a port given by number or by name into its number in c,
// or 0.
func resolvePort(c *container, port any) int {
	switch p := port.(type) {
	case int:
		return p
	case string:
		for _, cp := range c.Ports {
			if cp.Name == p {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

// matches reports whether sel selects labels. An empty selector matches
// nothing here: for the checks, a selector must say what it selects.
func matches(sel labelSelector, labels map[string]string) bool {
	if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		return false
	}
	for k, v := range sel.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, e := range sel.MatchExpressions {
		v, has := labels[e.Key]
		switch e.Operator {
		case "In":
			if !has || !slices.Contains(e.Values, v) {
				return false
			}
		case "NotIn":
			if has && slices.Contains(e.Values, v) {
				return false
			}
		case "Exists":
			if !has {
				return false
			}
		case "DoesNotExist":
			if has {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// parseSchedule parses a schedule as `beat validate` does, with every task
// type of the beat binary and no environment.
func parseSchedule(file string, data []byte) (*config.Config, error) {
	return config.Parse(file, data,
		config.WithTaskTypes(tasks.Default()),
		config.WithLookupEnv(func(string) (string, bool) { return "", false }))
}

func listenPort(listen string) (int, error) {
	_, p, err := net.SplitHostPort(listen)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}

// scheduleOf returns the ConfigMap's schedule, parsed, and the name of its
// key. The key is the file name of BEAT_CONFIG.
func scheduleOf(b *bundle) (*config.Config, string, error) {
	cfgPath, _, _ := env(beat(b), "BEAT_CONFIG")
	key := path.Base(cfgPath)
	if cfgPath == "" {
		key = "schedule.yaml"
	}
	data, ok := b.configMap.Data[key]
	if !ok {
		return nil, key, fmt.Errorf("%s: data: no key %q (the file name of BEAT_CONFIG)", b.fileOf["ConfigMap"], key)
	}
	cfg, err := parseSchedule(b.fileOf["ConfigMap"]+": data."+key, []byte(data))
	return cfg, key, err
}

// dockerfileInstr returns the arguments of every instruction ins (EXPOSE,
// USER, ...) in the Dockerfile's last stage.
func dockerfileInstr(b *bundle, ins string) [][]string {
	var out [][]string
	sc := bufio.NewScanner(strings.NewReader(b.dockerfile))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			out = nil // a new stage
		case ins:
			out = append(out, f[1:])
		}
	}
	return out
}

// unsetEnv, mountAt and volumeAt find what a way of breaking the manifests
// changes.
func unsetEnv(b *bundle, name string) {
	beat(b).Env = slices.DeleteFunc(beat(b).Env, func(e envVar) bool { return e.Name == name })
}

func mountAt(b *bundle, dir string) *volumeMount {
	ms := beat(b).VolumeMounts
	for i := range ms {
		if ms[i].MountPath == dir {
			return &ms[i]
		}
	}
	panic("no volume mount at " + dir)
}

func volumeAt(b *bundle, dir string) *volume {
	name := mountAt(b, dir).Name
	vs := pod(b).Volumes
	for i := range vs {
		if vs[i].Name == name {
			return &vs[i]
		}
	}
	panic("no volume " + name)
}

// ---- the checks ----

type check func(b *bundle) []string

var checks = []struct {
	name  string
	check check
	// breaks are ways to break the loaded manifests, each of which the
	// check must notice (TestChecksNotice).
	breaks map[string]func(b *bundle)
}{
	{"kustomization resources exist", checkResourcesExist, map[string]func(*bundle){
		"missing file": func(b *bundle) { b.resources = append(b.resources, "nothere.yaml") },
	}},
	{"every object file but the optional one is listed", checkAllListed, map[string]func(*bundle){
		"unlisted file": func(b *bundle) {
			b.resources = slices.DeleteFunc(b.resources, func(r string) bool { return r == "service.yaml" })
		},
		"optional listed": func(b *bundle) { b.resources = append(b.resources, optionalFile) },
	}},
	{"one object per file, with apiVersion, kind and name", checkOneObject, map[string]func(*bundle){
		"two objects": func(b *bundle) {
			b.objects["service.yaml"] = append(b.objects["service.yaml"], header{APIVersion: "v1", Kind: "Service", Metadata: meta{Name: "x"}})
		},
		"no name":        func(b *bundle) { b.objects["service.yaml"][0].Metadata.Name = "" },
		"no kind":        func(b *bundle) { b.objects["configmap.yaml"][0].Kind = "" },
		"no kust kind":   func(b *bundle) { b.kustHead.Kind = "" },
		"no apiVersion":  func(b *bundle) { b.objects["deployment.yaml"][0].APIVersion = "" },
		"a Secret, kept": func(b *bundle) { b.objects["service.yaml"][0].Kind = "Secret" },
	}},
	{"ConfigMap schedule validates", checkScheduleValidates, map[string]func(*bundle){
		"unknown field": func(b *bundle) { b.configMap.Data["schedule.yaml"] += "bogus: 1\n" },
		"unknown task": func(b *bundle) {
			b.configMap.Data["schedule.yaml"] += "  - {name: x, schedule: '@hourly', task: nosuch}\n"
		},
		"other key": func(b *bundle) { b.configMap.Data = map[string]string{"beat.yaml": b.configMap.Data["schedule.yaml"]} },
		"warning": func(b *bundle) {
			b.configMap.Data["schedule.yaml"] = "instance_id: pod-1\n" + b.configMap.Data["schedule.yaml"]
		},
	}},
	{"http.listen is the container port named http", checkListenPort, map[string]func(*bundle){
		"other port":   func(b *bundle) { beat(b).Ports[0].ContainerPort = 9090 },
		"port renamed": func(b *bundle) { beat(b).Ports[0].Name = "metrics" },
		"listen off": func(b *bundle) {
			b.configMap.Data["schedule.yaml"] = strings.Replace(b.configMap.Data["schedule.yaml"], `":8080"`, `""`, 1)
		},
		"env override": func(b *bundle) { beat(b).Env = append(beat(b).Env, envVar{Name: "BEAT_HTTP_LISTEN", Value: ":9090"}) },
	}},
	{"probes", checkProbes, map[string]func(*bundle){
		"readiness on /healthz": func(b *bundle) { beat(b).ReadinessProbe.HTTPGet.Path = "/healthz" },
		"liveness on /readyz":   func(b *bundle) { beat(b).LivenessProbe.HTTPGet.Path = "/readyz" },
		"no liveness":           func(b *bundle) { beat(b).LivenessProbe = nil },
		"no readiness":          func(b *bundle) { beat(b).ReadinessProbe = nil },
		"wrong port":            func(b *bundle) { beat(b).LivenessProbe.HTTPGet.Port = 9090 },
		"unknown port name":     func(b *bundle) { beat(b).ReadinessProbe.HTTPGet.Port = "metrics" },
		"startup on /readyz": func(b *bundle) {
			p := *beat(b).LivenessProbe
			h := *p.HTTPGet
			h.Path, p.HTTPGet = "/readyz", &h
			beat(b).StartupProbe = &p
		},
		"liveness hastier than readiness": func(b *bundle) {
			beat(b).LivenessProbe.PeriodSeconds, beat(b).LivenessProbe.FailureThreshold = 1, 1
		},
	}},
	{"Service targets the http port", checkService, map[string]func(*bundle){
		"target by number, wrong": func(b *bundle) { b.service.Spec.Ports[0].TargetPort = 9090 },
		"target by name, wrong":   func(b *bundle) { b.service.Spec.Ports[0].TargetPort = "metrics" },
		"port renamed":            func(b *bundle) { b.service.Spec.Ports[0].Name = "web" },
		"selector misses":         func(b *bundle) { b.service.Spec.Selector = map[string]string{"app": "other"} },
		"no selector":             func(b *bundle) { b.service.Spec.Selector = nil },
		"not ClusterIP":           func(b *bundle) { b.service.Spec.Type = "LoadBalancer" },
	}},
	{"ServiceMonitor scrapes /metrics on port http", checkServiceMonitor, map[string]func(*bundle){
		"other port":      func(b *bundle) { b.monitor.Spec.Endpoints[0].Port = "web" },
		"other path":      func(b *bundle) { b.monitor.Spec.Endpoints[0].Path = "/status" },
		"selector misses": func(b *bundle) { b.monitor.Spec.Selector.MatchLabels = map[string]string{"app": "other"} },
		"no endpoints":    func(b *bundle) { b.monitor.Spec.Endpoints = nil },
	}},
	{"grace period outlasts shutdown_timeout", checkGracePeriod, map[string]func(*bundle){
		"grace too short":          func(b *bundle) { v := int64(28); pod(b).TerminationGracePeriodSeconds = &v },
		"grace = shutdown_timeout": func(b *bundle) { v := int64(25); pod(b).TerminationGracePeriodSeconds = &v },
		"shutdown_timeout longer": func(b *bundle) {
			b.configMap.Data["schedule.yaml"] = strings.Replace(b.configMap.Data["schedule.yaml"], "shutdown_timeout: 25s", "shutdown_timeout: 1m", 1)
		},
	}},
	{"ConfigMap mounted as a directory at BEAT_CONFIG's", checkConfigMount, map[string]func(*bundle){
		"subPath":        func(b *bundle) { mountAt(b, "/etc/beat").SubPath = "schedule.yaml" },
		"other dir":      func(b *bundle) { mountAt(b, "/etc/beat").MountPath = "/config" },
		"no BEAT_CONFIG": func(b *bundle) { unsetEnv(b, "BEAT_CONFIG") },
		"other map":      func(b *bundle) { volumeAt(b, "/etc/beat").ConfigMap.Name = "other" },
		"items":          func(b *bundle) { volumeAt(b, "/etc/beat").ConfigMap.Items = []any{"x"} },
	}},
	{"emptyDir at /tmp", checkTmp, map[string]func(*bundle){
		"no mount":        func(b *bundle) { mountAt(b, "/tmp").MountPath = "/scratch" },
		"not an emptyDir": func(b *bundle) { volumeAt(b, "/tmp").EmptyDir = nil },
	}},
	{"restricted Pod Security Standard", checkRestricted, map[string]func(*bundle){
		"runAsNonRoot false": func(b *bundle) { f := false; pod(b).SecurityContext.RunAsNonRoot = &f },
		"runAsNonRoot unset": func(b *bundle) { pod(b).SecurityContext.RunAsNonRoot = nil },
		"root user in pod":   func(b *bundle) { z := int64(0); pod(b).SecurityContext.RunAsUser = &z },
		"root user":          func(b *bundle) { z := int64(0); beat(b).SecurityContext.RunAsUser = &z },
		"no user":            func(b *bundle) { pod(b).SecurityContext.RunAsUser = nil },
		"escalation allowed": func(b *bundle) { t := true; beat(b).SecurityContext.AllowPrivilegeEscalation = &t },
		"escalation unset":   func(b *bundle) { beat(b).SecurityContext.AllowPrivilegeEscalation = nil },
		"privileged":         func(b *bundle) { t := true; beat(b).SecurityContext.Privileged = &t },
		"capabilities kept":  func(b *bundle) { beat(b).SecurityContext.Capabilities.Drop = []string{"NET_RAW"} },
		"capability added":   func(b *bundle) { beat(b).SecurityContext.Capabilities.Add = []string{"NET_ADMIN"} },
		"seccomp unset":      func(b *bundle) { pod(b).SecurityContext.SeccompProfile = nil },
		"seccomp unconfined": func(b *bundle) { beat(b).SecurityContext.SeccompProfile = &seccompProfile{Type: "Unconfined"} },
		"hostNetwork":        func(b *bundle) { pod(b).HostNetwork = true },
		"hostPID":            func(b *bundle) { pod(b).HostPID = true },
		"hostIPC":            func(b *bundle) { pod(b).HostIPC = true },
		"hostPort":           func(b *bundle) { beat(b).Ports[0].HostPort = 8080 },
		"hostPath volume": func(b *bundle) {
			pod(b).Volumes = append(pod(b).Volumes, volume{Name: "host", Other: map[string]any{"hostPath": map[string]any{"path": "/"}}})
		},
		"no securityContext":    func(b *bundle) { beat(b).SecurityContext = nil },
		"init container unsafe": func(b *bundle) { pod(b).InitContainers = []container{{Name: "init", Image: "busybox:1.36"}} },
	}},
	{"read-only root filesystem", checkReadOnlyRoot, map[string]func(*bundle){
		"writable": func(b *bundle) { f := false; beat(b).SecurityContext.ReadOnlyRootFilesystem = &f },
		"unset":    func(b *bundle) { beat(b).SecurityContext.ReadOnlyRootFilesystem = nil },
	}},
	{"resource requests and limits", checkResources, map[string]func(*bundle){
		"no cpu limit":       func(b *bundle) { delete(beat(b).Resources.Limits, "cpu") },
		"no memory request":  func(b *bundle) { delete(beat(b).Resources.Requests, "memory") },
		"no limits":          func(b *bundle) { beat(b).Resources.Limits = nil },
		"empty memory limit": func(b *bundle) { beat(b).Resources.Limits["memory"] = "" },
	}},
	{"image tag pinned", checkImagePinned, map[string]func(*bundle){
		"latest":             func(b *bundle) { beat(b).Image = "ghcr.io/beatlock/beat:latest" },
		"no tag":             func(b *bundle) { beat(b).Image = "ghcr.io/beatlock/beat" },
		"registry port only": func(b *bundle) { beat(b).Image = "localhost:5000/beat" },
		"empty":              func(b *bundle) { beat(b).Image = "" },
	}},
	{"environment", checkEnv, map[string]func(*bundle){
		"instance id from pod name": func(b *bundle) {
			e := envVar{Name: "BEAT_INSTANCE_ID"}
			yaml.Unmarshal([]byte("{fieldRef: {fieldPath: metadata.name}}"), &e.ValueFrom)
			beat(b).Env = append(beat(b).Env, e)
		},
		"redis url literal": func(b *bundle) {
			c := beat(b)
			for i := range c.Env {
				if c.Env[i].Name == "BEAT_REDIS_URL" {
					c.Env[i].ValueFrom, c.Env[i].Value = nil, "redis://:secret@redis:6379/0"
				}
			}
		},
		"no redis url": func(b *bundle) { unsetEnv(b, "BEAT_REDIS_URL") },
	}},
	{"no service account token", checkServiceAccountToken, map[string]func(*bundle){
		"unset": func(b *bundle) { pod(b).AutomountServiceAccountToken = nil },
		"true":  func(b *bundle) { t := true; pod(b).AutomountServiceAccountToken = &t },
	}},
	{"replicas", checkReplicas, map[string]func(*bundle){
		"one":   func(b *bundle) { one := 1; b.deploy.Spec.Replicas = &one },
		"unset": func(b *bundle) { b.deploy.Spec.Replicas = nil },
	}},
	{"selectors match the pod template", checkSelectors, map[string]func(*bundle){
		"deployment selector misses": func(b *bundle) { b.deploy.Spec.Selector.MatchLabels = map[string]string{"app": "other"} },
		"pdb selector misses":        func(b *bundle) { b.pdb.Spec.Selector.MatchLabels = map[string]string{"app": "other"} },
		"pdb selector empty":         func(b *bundle) { b.pdb.Spec.Selector = labelSelector{} },
		"pdb minAvailable":           func(b *bundle) { b.pdb.Spec.MaxUnavailable, b.pdb.Spec.MinAvailable = nil, 3 },
		"pdb maxUnavailable 0":       func(b *bundle) { b.pdb.Spec.MaxUnavailable = 0 },
		"template relabelled":        func(b *bundle) { b.deploy.Spec.Template.Metadata.Labels = map[string]string{"app": "x"} },
	}},
	{"topology spread over nodes and zones", checkTopologySpread, map[string]func(*bundle){
		"no zone spread": func(b *bundle) { pod(b).TopologySpreadConstraints = pod(b).TopologySpreadConstraints[:1] },
		"no node spread": func(b *bundle) { pod(b).TopologySpreadConstraints = pod(b).TopologySpreadConstraints[1:] },
		"selector misses": func(b *bundle) {
			pod(b).TopologySpreadConstraints[0].LabelSelector = &labelSelector{MatchLabels: map[string]string{"app": "other"}}
		},
	}},
	{"image schedule and Dockerfile", checkImage, map[string]func(*bundle){
		"other EXPOSE": func(b *bundle) { b.dockerfile = strings.Replace(b.dockerfile, "EXPOSE 8080", "EXPOSE 9090", 1) },
		"no EXPOSE":    func(b *bundle) { b.dockerfile = strings.Replace(b.dockerfile, "EXPOSE 8080", "", 1) },
		"invalid":      func(b *bundle) { b.imageSchedule = append(b.imageSchedule, "bogus: 1\n"...) },
		"listen off": func(b *bundle) {
			b.imageSchedule = bytes.Replace(b.imageSchedule, []byte(`":8080"`), []byte(`""`), 1)
		},
		"user by name": func(b *bundle) {
			b.dockerfile = strings.Replace(b.dockerfile, "USER 65532:65532", "USER nonroot:nonroot", 1)
		},
		"other schedule copied": func(b *bundle) {
			b.dockerfile = strings.Replace(b.dockerfile, "COPY deploy/schedule.yaml", "COPY schedule.yaml", 1)
		},
	}},
}

func checkResourcesExist(b *bundle) []string {
	var ps []string
	if len(b.resources) == 0 {
		ps = append(ps, kustomization+": resources: empty")
	}
	for _, r := range b.resources {
		if _, err := os.Stat(filepath.Join(dir, r)); err != nil {
			ps = append(ps, fmt.Sprintf("%s: resources: %s does not exist", kustomization, r))
		}
	}
	return ps
}

func checkAllListed(b *bundle) []string {
	var ps []string
	for _, f := range b.files {
		listed := slices.Contains(b.resources, f)
		switch {
		case f == optionalFile && listed:
			ps = append(ps, fmt.Sprintf("%s: resources: lists %s, which needs the Prometheus Operator's CRD; leave it out (it is applied on its own)", kustomization, f))
		case f != optionalFile && !listed:
			ps = append(ps, fmt.Sprintf("%s: resources: %s is not listed, so `kubectl apply -k` leaves it out", kustomization, f))
		}
	}
	return ps
}

func checkOneObject(b *bundle) []string {
	var ps []string
	if !strings.HasPrefix(b.kustHead.APIVersion, "kustomize.config.k8s.io/") || b.kustHead.Kind != "Kustomization" {
		ps = append(ps, fmt.Sprintf("%s: apiVersion/kind = %q/%q, want kustomize.config.k8s.io/v1beta1 Kustomization", kustomization, b.kustHead.APIVersion, b.kustHead.Kind))
	}
	kinds := map[string][]string{}
	for _, f := range b.files {
		objs := b.objects[f]
		if len(objs) != 1 {
			ps = append(ps, fmt.Sprintf("%s: holds %d objects, want exactly 1", f, len(objs)))
		}
		for i, o := range objs {
			for field, v := range map[string]string{"apiVersion": o.APIVersion, "kind": o.Kind, "metadata.name": o.Metadata.Name} {
				if v == "" {
					ps = append(ps, fmt.Sprintf("%s: object %d: %s is missing", f, i+1, field))
				}
			}
			if o.Kind == "Secret" {
				ps = append(ps, fmt.Sprintf("%s: kind: Secret %q: no secrets in the repository; create it with kubectl create secret (see %s)", f, o.Metadata.Name, kustomization))
			}
			if !slices.Contains(kinds[o.Kind], f) {
				kinds[o.Kind] = append(kinds[o.Kind], f)
			}
		}
	}
	for kind, fs := range kinds {
		if len(fs) > 1 && kind != "" {
			ps = append(ps, fmt.Sprintf("%s: kind: %s in %d files, want one", strings.Join(fs, ", "), kind, len(fs)))
		}
	}
	slices.Sort(ps) // map order
	return ps
}

func checkScheduleValidates(b *bundle) []string {
	cfg, key, err := scheduleOf(b)
	if err != nil {
		return []string{err.Error()}
	}
	var ps []string
	for _, w := range cfg.Warnings {
		ps = append(ps, fmt.Sprintf("%s: data.%s: warning: %v", b.fileOf["ConfigMap"], key, w))
	}
	return ps
}

func checkListenPort(b *bundle) []string {
	c := beat(b)
	var ps []string
	if v, _, ok := env(c, "BEAT_HTTP_LISTEN"); ok {
		ps = append(ps, fmt.Sprintf("%s: %s: BEAT_HTTP_LISTEN=%q overrides the ConfigMap's http.listen; set the port in one place, the ConfigMap", b.fileOf["Deployment"], containerField(c, "env"), v))
	}
	cfg, key, err := scheduleOf(b)
	if err != nil {
		return append(ps, err.Error())
	}
	port, err := listenPort(cfg.HTTP.Listen)
	if err != nil {
		return append(ps, fmt.Sprintf("%s: data.%s: http.listen %q: %v; the probes need the listener", b.fileOf["ConfigMap"], key, cfg.HTTP.Listen, err))
	}
	if hp := httpPort(c); hp == 0 {
		ps = append(ps, fmt.Sprintf("%s: %s: no port named %q", b.fileOf["Deployment"], containerField(c, "ports"), httpPortName))
	} else if hp != port {
		ps = append(ps, fmt.Sprintf("%s: %s: port %q is %d, but %s: data.%s: http.listen is %q", b.fileOf["Deployment"], containerField(c, "ports"), httpPortName, hp, b.fileOf["ConfigMap"], key, cfg.HTTP.Listen))
	}
	return ps
}

func checkProbes(b *bundle) []string {
	c := beat(b)
	file := b.fileOf["Deployment"]
	want := httpPort(c)
	var ps []string
	for _, p := range []struct {
		field    string
		probe    *probe
		path     string
		optional bool
	}{
		{"readinessProbe", c.ReadinessProbe, "/readyz", false},
		{"livenessProbe", c.LivenessProbe, "/healthz", false},
		{"startupProbe", c.StartupProbe, "/healthz", true},
	} {
		field := containerField(c, p.field)
		switch {
		case p.probe == nil && p.optional:
			continue
		case p.probe == nil:
			ps = append(ps, fmt.Sprintf("%s: %s: missing", file, field))
			continue
		case p.probe.HTTPGet == nil:
			ps = append(ps, fmt.Sprintf("%s: %s.httpGet: missing; beat answers on GET %s", file, field, p.path))
			continue
		}
		if got := p.probe.HTTPGet.Path; got != p.path {
			ps = append(ps, fmt.Sprintf("%s: %s.httpGet.path = %q, want %q", file, field, got, p.path))
		}
		if got := resolvePort(c, p.probe.HTTPGet.Port); got == 0 || got != want {
			ps = append(ps, fmt.Sprintf("%s: %s.httpGet.port = %v (%d), want the container port named %q (%d)", file, field, p.probe.HTTPGet.Port, got, httpPortName, want))
		}
	}
	// A restart must not come before the pod would have turned unready:
	// liveness is the more patient of the two.
	if c.ReadinessProbe != nil && c.LivenessProbe != nil {
		if l, r := patience(c.LivenessProbe), patience(c.ReadinessProbe); l < r {
			ps = append(ps, fmt.Sprintf("%s: %s: periodSeconds*failureThreshold = %ds, less than the readiness probe's %ds", file, containerField(c, "livenessProbe"), l, r))
		}
	}
	return ps
}

// patience is how long a probe fails before it acts, with Kubernetes's
// defaults.
func patience(p *probe) int {
	period, failures := p.PeriodSeconds, p.FailureThreshold
	if period == 0 {
		period = 10
	}
	if failures == 0 {
		failures = 3
	}
	return period * failures
}

func checkService(b *bundle) []string {
	file, s := b.fileOf["Service"], b.service
	var ps []string
	if s.Spec.Type != "" && s.Spec.Type != "ClusterIP" {
		ps = append(ps, fmt.Sprintf("%s: spec.type = %q, want ClusterIP (metrics stay inside the cluster)", file, s.Spec.Type))
	}
	if len(s.Spec.Selector) == 0 || !matches(labelSelector{MatchLabels: s.Spec.Selector}, podLabels(b)) {
		ps = append(ps, fmt.Sprintf("%s: spec.selector %v does not select the pod template's labels %v", file, s.Spec.Selector, podLabels(b)))
	}
	c, found := beat(b), false
	for i, p := range s.Spec.Ports {
		if p.Name != httpPortName {
			continue
		}
		found = true
		target := p.TargetPort
		if target == nil {
			target = p.Port // Kubernetes's default
		}
		if got := resolvePort(c, target); got == 0 || got != httpPort(c) {
			ps = append(ps, fmt.Sprintf("%s: spec.ports[%d].targetPort = %v, want the container port named %q (%d)", file, i, p.TargetPort, httpPortName, httpPort(c)))
		}
	}
	if !found {
		ps = append(ps, fmt.Sprintf("%s: spec.ports: no port named %q", file, httpPortName))
	}
	return ps
}

func checkServiceMonitor(b *bundle) []string {
	file, m := b.fileOf["ServiceMonitor"], b.monitor
	var ps []string
	if !matches(m.Spec.Selector, b.service.Metadata.Labels) {
		ps = append(ps, fmt.Sprintf("%s: spec.selector does not select %s's labels %v", file, b.fileOf["Service"], b.service.Metadata.Labels))
	}
	if len(m.Spec.Endpoints) == 0 {
		ps = append(ps, fmt.Sprintf("%s: spec.endpoints: empty", file))
	}
	for i, e := range m.Spec.Endpoints {
		if e.Port != httpPortName {
			ps = append(ps, fmt.Sprintf("%s: spec.endpoints[%d].port = %q, want %q (the Service's port to the container port named %[4]q)", file, i, e.Port, httpPortName))
		}
		if e.Path != "/metrics" {
			ps = append(ps, fmt.Sprintf("%s: spec.endpoints[%d].path = %q, want /metrics", file, i, e.Path))
		}
	}
	return ps
}

func checkGracePeriod(b *bundle) []string {
	cfg, _, err := scheduleOf(b)
	if err != nil {
		return []string{err.Error()}
	}
	grace := int64(30) // Kubernetes's default
	if g := pod(b).TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	if need := cfg.ShutdownTimeout + graceMargin; time.Duration(grace)*time.Second < need {
		return []string{fmt.Sprintf("%s: spec.template.spec.terminationGracePeriodSeconds = %d, want at least %.0f (%s: shutdown_timeout %s + %s for cancelled runs and releasing locks)",
			b.fileOf["Deployment"], grace, need.Seconds(), b.fileOf["ConfigMap"], cfg.ShutdownTimeout, graceMargin)}
	}
	return nil
}

func checkConfigMount(b *bundle) []string {
	c, file := beat(b), b.fileOf["Deployment"]
	cfgPath, from, ok := env(c, "BEAT_CONFIG")
	if !ok || from || !path.IsAbs(cfgPath) {
		return []string{fmt.Sprintf("%s: %s: BEAT_CONFIG = %q, want the absolute path of the schedule in the mounted ConfigMap", file, containerField(c, "env"), cfgPath)}
	}
	volumes := map[string]volume{}
	for _, v := range pod(b).Volumes {
		volumes[v.Name] = v
	}
	var ps []string
	want := path.Dir(cfgPath)
	found := false
	for i, m := range c.VolumeMounts {
		v := volumes[m.Name]
		if v.ConfigMap == nil || v.ConfigMap.Name != b.configMap.Metadata.Name {
			continue
		}
		found = true
		if m.SubPath != "" {
			ps = append(ps, fmt.Sprintf("%s: %s.subPath = %q: a subPath mount never sees the ConfigMap's updates, so beat would not reload; mount the directory", file, containerField(c, fmt.Sprintf("volumeMounts[%d]", i)), m.SubPath))
		}
		if path.Clean(m.MountPath) != want {
			ps = append(ps, fmt.Sprintf("%s: %s.mountPath = %q, want %q, the directory of BEAT_CONFIG", file, containerField(c, fmt.Sprintf("volumeMounts[%d]", i)), m.MountPath, want))
		}
		if len(v.ConfigMap.Items) > 0 {
			ps = append(ps, fmt.Sprintf("%s: spec.template.spec.volumes[%s].configMap.items: set; mount every key, as named in the ConfigMap", file, v.Name))
		}
	}
	if !found {
		ps = append(ps, fmt.Sprintf("%s: %s: no mount of a volume from ConfigMap %q (%s)", file, containerField(c, "volumeMounts"), b.configMap.Metadata.Name, b.fileOf["ConfigMap"]))
	}
	return ps
}

func checkTmp(b *bundle) []string {
	c, file := beat(b), b.fileOf["Deployment"]
	for _, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) != "/tmp" {
			continue
		}
		for _, v := range pod(b).Volumes {
			if v.Name == m.Name && v.EmptyDir != nil {
				return nil
			}
		}
		return []string{fmt.Sprintf("%s: %s: /tmp is mounted from %q, want an emptyDir", file, containerField(c, "volumeMounts"), m.Name)}
	}
	return []string{fmt.Sprintf("%s: %s: no emptyDir at /tmp for tasks (the root filesystem is read-only)", file, containerField(c, "volumeMounts"))}
}

// restrictedVolumes are the volume sources the restricted Pod Security
// Standard allows.
var restrictedVolumes = []string{"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}

func checkRestricted(b *bundle) []string {
	file, p := b.fileOf["Deployment"], pod(b)
	const spec = "spec.template.spec"
	var ps []string
	bad := func(field, format string, args ...any) {
		ps = append(ps, fmt.Sprintf("%s: %s: %s", file, field, fmt.Sprintf(format, args...)))
	}
	for field, on := range map[string]bool{"hostNetwork": p.HostNetwork, "hostPID": p.HostPID, "hostIPC": p.HostIPC} {
		if on {
			bad(spec+"."+field, "true; the restricted profile forbids host namespaces")
		}
	}
	for _, v := range p.Volumes {
		var types []string
		if v.ConfigMap != nil {
			types = append(types, "configMap")
		}
		if v.EmptyDir != nil {
			types = append(types, "emptyDir")
		}
		for k := range v.Other {
			types = append(types, k)
		}
		for _, typ := range types {
			if !slices.Contains(restrictedVolumes, typ) {
				bad(fmt.Sprintf("%s.volumes[%s].%s", spec, v.Name, typ), "the restricted profile allows only %s", strings.Join(restrictedVolumes, ", "))
			}
		}
	}
	psc := p.SecurityContext
	if psc == nil {
		psc = &podSecurityContext{}
	}
	if psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		bad(spec+".securityContext.runAsUser", "0 (root)")
	}
	if psc.SeccompProfile != nil && !okSeccomp(psc.SeccompProfile.Type) {
		bad(spec+".securityContext.seccompProfile.type", "%q, want RuntimeDefault or Localhost", psc.SeccompProfile.Type)
	}
	for _, c := range allContainers(p) {
		sc := c.SecurityContext
		if sc == nil {
			sc = &securityContext{}
		}
		nonRoot := psc.RunAsNonRoot
		if sc.RunAsNonRoot != nil {
			nonRoot = sc.RunAsNonRoot
		}
		if nonRoot == nil || !*nonRoot {
			bad(c.field("securityContext.runAsNonRoot"), "not true here or in %s.securityContext", spec)
		}
		user := psc.RunAsUser
		if sc.RunAsUser != nil {
			user = sc.RunAsUser
		}
		switch {
		case user == nil:
			bad(c.field("securityContext.runAsUser"), "unset here and in %s.securityContext; the kubelet can check runAsNonRoot only against a numeric user", spec)
		case *user == 0:
			bad(c.field("securityContext.runAsUser"), "0 (root)")
		}
		if sc.RunAsGroup != nil && *sc.RunAsGroup == 0 {
			bad(c.field("securityContext.runAsGroup"), "0 (root)")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			bad(c.field("securityContext.allowPrivilegeEscalation"), "want false")
		}
		if sc.Privileged != nil && *sc.Privileged {
			bad(c.field("securityContext.privileged"), "true")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			bad(c.field("securityContext.capabilities.drop"), "want [ALL]")
		}
		if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
			bad(c.field("securityContext.capabilities.add"), "%v; beat needs no capabilities", sc.Capabilities.Add)
		}
		seccomp := psc.SeccompProfile
		if sc.SeccompProfile != nil {
			seccomp = sc.SeccompProfile
		}
		if seccomp == nil || !okSeccomp(seccomp.Type) {
			bad(c.field("securityContext.seccompProfile.type"), "want RuntimeDefault or Localhost, here or in %s.securityContext", spec)
		}
		for _, port := range c.Ports {
			if port.HostPort != 0 {
				bad(c.field("ports["+port.Name+"].hostPort"), "%d; the restricted profile forbids host ports", port.HostPort)
			}
		}
	}
	slices.Sort(ps) // map order
	return ps
}

func okSeccomp(typ string) bool { return typ == "RuntimeDefault" || typ == "Localhost" }

func checkReadOnlyRoot(b *bundle) []string {
	var ps []string
	for _, c := range allContainers(pod(b)) {
		if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
			ps = append(ps, fmt.Sprintf("%s: %s: want true", b.fileOf["Deployment"], c.field("securityContext.readOnlyRootFilesystem")))
		}
	}
	return ps
}

func checkResources(b *bundle) []string {
	var ps []string
	for _, c := range allContainers(pod(b)) {
		for _, kind := range []struct {
			name string
			m    map[string]string
		}{{"requests", c.Resources.Requests}, {"limits", c.Resources.Limits}} {
			for _, r := range []string{"cpu", "memory"} {
				if strings.TrimSpace(kind.m[r]) == "" {
					ps = append(ps, fmt.Sprintf("%s: %s: unset", b.fileOf["Deployment"], c.field("resources."+kind.name+"."+r)))
				}
			}
		}
	}
	return ps
}

func checkImagePinned(b *bundle) []string {
	var ps []string
	for _, c := range allContainers(pod(b)) {
		if _, digest, ok := strings.Cut(c.Image, "@"); ok && digest != "" {
			continue
		}
		name := c.Image[strings.LastIndex(c.Image, "/")+1:] // a registry's :port is not a tag
		_, tag, _ := strings.Cut(name, ":")
		if c.Image == "" || tag == "" || tag == "latest" {
			ps = append(ps, fmt.Sprintf("%s: %s = %q: pin a version tag (every replica must run the same beat), not latest or none", b.fileOf["Deployment"], c.field("image"), c.Image))
		}
	}
	return ps
}

func checkEnv(b *bundle) []string {
	c, file := beat(b), b.fileOf["Deployment"]
	var ps []string
	if _, _, ok := env(c, "BEAT_INSTANCE_ID"); ok {
		ps = append(ps, fmt.Sprintf("%s: %s: BEAT_INSTANCE_ID is set; leave it unset so each start gets a random id (a pod name survives a container restart)", file, containerField(c, "env")))
	}
	found := false
	for _, e := range c.Env {
		if e.Name != "BEAT_REDIS_URL" {
			continue
		}
		found = true
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name == "" || e.ValueFrom.SecretKeyRef.Key == "" {
			ps = append(ps, fmt.Sprintf("%s: %s: BEAT_REDIS_URL must come from valueFrom.secretKeyRef (it holds the password)", file, containerField(c, "env")))
		}
	}
	if !found {
		ps = append(ps, fmt.Sprintf("%s: %s: no BEAT_REDIS_URL from the Secret", file, containerField(c, "env")))
	}
	return ps
}

func checkServiceAccountToken(b *bundle) []string {
	if t := pod(b).AutomountServiceAccountToken; t == nil || *t {
		return []string{fmt.Sprintf("%s: spec.template.spec.automountServiceAccountToken: want false (beat does not call the Kubernetes API)", b.fileOf["Deployment"])}
	}
	return nil
}

func checkReplicas(b *bundle) []string {
	if r := b.deploy.Spec.Replicas; r == nil || *r != replicas {
		got := "unset"
		if r != nil {
			got = strconv.Itoa(*r)
		}
		return []string{fmt.Sprintf("%s: spec.replicas = %s, want %d", b.fileOf["Deployment"], got, replicas)}
	}
	return nil
}

func checkSelectors(b *bundle) []string {
	labels := podLabels(b)
	var ps []string
	if !matches(b.deploy.Spec.Selector, labels) {
		ps = append(ps, fmt.Sprintf("%s: spec.selector does not select spec.template.metadata.labels %v", b.fileOf["Deployment"], labels))
	}
	if !matches(b.pdb.Spec.Selector, labels) {
		ps = append(ps, fmt.Sprintf("%s: spec.selector does not select %s's spec.template.metadata.labels %v", b.fileOf["PodDisruptionBudget"], b.fileOf["Deployment"], labels))
	}
	if b.pdb.Spec.MinAvailable != nil || b.pdb.Spec.MaxUnavailable != 1 {
		ps = append(ps, fmt.Sprintf("%s: spec: maxUnavailable = %v, minAvailable = %v; want maxUnavailable 1 and no minAvailable", b.fileOf["PodDisruptionBudget"], b.pdb.Spec.MaxUnavailable, b.pdb.Spec.MinAvailable))
	}
	return ps
}

func checkTopologySpread(b *bundle) []string {
	var ps []string
	for _, key := range []string{"kubernetes.io/hostname", "topology.kubernetes.io/zone"} {
		found := false
		for i, c := range pod(b).TopologySpreadConstraints {
			if c.TopologyKey != key {
				continue
			}
			found = true
			if c.LabelSelector == nil || !matches(*c.LabelSelector, podLabels(b)) {
				ps = append(ps, fmt.Sprintf("%s: spec.template.spec.topologySpreadConstraints[%d].labelSelector does not select the pod template's labels", b.fileOf["Deployment"], i))
			}
		}
		if !found {
			ps = append(ps, fmt.Sprintf("%s: spec.template.spec.topologySpreadConstraints: none over %s", b.fileOf["Deployment"], key))
		}
	}
	return ps
}

func checkImage(b *bundle) []string {
	var ps []string
	cfg, err := parseSchedule(imageScheduleS, b.imageSchedule)
	if err != nil {
		ps = append(ps, err.Error())
	}
	var exposed []int
	for _, args := range dockerfileInstr(b, "EXPOSE") {
		for _, a := range args {
			p, _, _ := strings.Cut(a, "/")
			if n, err := strconv.Atoi(p); err == nil {
				exposed = append(exposed, n)
			}
		}
	}
	if cfg != nil {
		port, err := listenPort(cfg.HTTP.Listen)
		switch {
		case err != nil:
			ps = append(ps, fmt.Sprintf("%s: http.listen %q: %v; the image should serve /metrics and the probes", imageScheduleS, cfg.HTTP.Listen, err))
		case len(exposed) == 0:
			ps = append(ps, fmt.Sprintf("Dockerfile: no EXPOSE in the last stage; want EXPOSE %d, %s's http.listen port", port, imageScheduleS))
		case !slices.Contains(exposed, port):
			ps = append(ps, fmt.Sprintf("Dockerfile: EXPOSE %v does not include %s's http.listen port %d", exposed, imageScheduleS, port))
		}
	}
	// The schedule checked above is the one the image reads.
	var cfgPath string
	for _, args := range dockerfileInstr(b, "ENV") {
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, "BEAT_CONFIG="); ok {
				cfgPath = v
			}
		}
	}
	copied := false
	for _, args := range dockerfileInstr(b, "COPY") {
		if len(args) == 2 && args[0] == imageScheduleS && args[1] == cfgPath {
			copied = true
		}
	}
	if !copied {
		ps = append(ps, fmt.Sprintf("Dockerfile: no COPY %s to ENV BEAT_CONFIG (%q)", imageScheduleS, cfgPath))
	}
	// runAsNonRoot can only be checked against a numeric user.
	users := dockerfileInstr(b, "USER")
	if len(users) == 0 {
		ps = append(ps, "Dockerfile: USER: unset, the image would run as root")
	}
	for _, u := range users {
		uid, _, _ := strings.Cut(strings.Join(u, " "), ":")
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			ps = append(ps, fmt.Sprintf("Dockerfile: USER %s: want a numeric non-root uid (65532, distroless's nonroot), which Kubernetes can check runAsNonRoot against", strings.Join(u, " ")))
		}
	}
	return ps
}

// ---- the tests ----

func TestManifests(t *testing.T) {
	b := load(t)
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			for _, p := range c.check(b) {
				t.Error(p)
			}
		})
	}
}

// TestChecksNotice makes sure each check can fail: for each way of breaking
// the manifests a check lists, the check must report a problem, and the
// unbroken manifests must pass (TestManifests).
func TestChecksNotice(t *testing.T) {
	for _, c := range checks {
		if len(c.breaks) == 0 {
			t.Errorf("check %q lists no way to break it", c.name)
		}
		for name, breakIt := range c.breaks {
			t.Run(c.name+"/"+name, func(t *testing.T) {
				b := load(t)
				if ps := c.check(b); len(ps) > 0 {
					t.Skipf("the unbroken manifests already fail (see TestManifests): %v", ps)
				}
				breakIt(b)
				ps := c.check(b)
				if len(ps) == 0 {
					t.Fatalf("check %q did not notice %s", c.name, name)
				}
				t.Log(strings.Join(ps, "\n"))
			})
		}
	}
}

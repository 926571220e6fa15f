package lab

// Builder assembles a Config fluently; SpecOf (through Up) reports any
// mistake, so set-up code in tests stays flat:
//
//	l, err := lab.New("t1").Nodes(3).Backend(lab.BackendVXLAN).Up(ctx)
type Builder struct{ cfg Config }

// New starts a lab description with the defaults of the CLI.
func New(name string) *Builder { return &Builder{cfg: Config{Name: name}} }

func (b *Builder) Nodes(n int) *Builder         { b.cfg.Nodes = n; return b }
func (b *Builder) PodsPerNode(k int) *Builder   { b.cfg.PodsPerNode = k; return b }
func (b *Builder) Backend(x Backend) *Builder   { b.cfg.Backend = x; return b }
func (b *Builder) Topology(t Topology) *Builder { b.cfg.Topology = t; return b }

// IPFamily makes the lab dual-stack (FamilyDual) or IPv4 only.
func (b *Builder) IPFamily(f string) *Builder { b.cfg.IPFamily = f; return b }

// Controller has the inventory dial every agent from node's network.
func (b *Builder) Controller(node string) *Builder { b.cfg.Controller = node; return b }

// Agents starts podpath agents in the lab's nodes and Pods.
func (b *Builder) Agents(on bool) *Builder { b.cfg.Agents = on; return b }

// Kubernetes makes the lab a cluster of real nodes with Calico installed
// the given way (lab.CalicoKubespray, CalicoManifest or CalicoOperator).
func (b *Builder) Kubernetes(calico string) *Builder {
	b.cfg.Kubernetes, b.cfg.Calico = true, calico
	return b
}

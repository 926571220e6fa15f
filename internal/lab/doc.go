// Package lab builds a Calico-style Kubernetes dataplane out of Linux network
// namespaces on one machine, and breaks it on demand.
//
// A lab is a fabric namespace (one bridge, or a router joining two subnets),
// node namespaces with an underlay address in 198.18.0.0/15, and Pod
// namespaces wired the way the Calico CNI plugin and Felix wire them: a /32
// from the node's /26 block of 10.233.64.0/18, 169.254.1.1 as gateway through
// proxy ARP on the host-side cali* veth, and a blackhole route for the local
// block. Nodes reach each other's blocks over VXLAN (vxlan.calico, VNI 4096),
// over BGP with BIRD 2, or not at all (backend none).
//
// The plan (addresses, names, MTUs) is pure and lives in spec.go; everything
// that touches the kernel is in the _linux.go files.
package lab

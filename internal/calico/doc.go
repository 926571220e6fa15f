// Package calico holds what podpath knows about Calico, pure: the
// encapsulation overheads per encapsulation and IP family, the Pod MTU
// range, Kubespray's backends, the mesh peers' BIRD names. Talking to
// BIRD itself is internal/bird's.
package calico

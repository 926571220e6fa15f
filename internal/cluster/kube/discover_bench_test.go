package kube

import (
	"context"
	"fmt"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"podpath/internal/kubetest"
)

// BenchmarkNodes2000 lists 2,000 Node objects from a real API server, as
// discovery does on a large cluster (go test -run NONE -bench Nodes2000).
func BenchmarkNodes2000(b *testing.B) {
	env := kubetest.Start(b, false)
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 500, 1000 // creating the fixture, not what is measured
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range 2000 {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node%04d", i),
				Annotations: map[string]string{AnnotIPv4Address: fmt.Sprintf("198.18.%d.%d/16", i/250, i%250+1)}}}
			if _, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	client := kubernetes.NewForConfigOrDie(env.Config) // default client limits, as a user has
	b.ResetTimer()
	for b.Loop() {
		nodes, err := Nodes(ctx, client)
		if err != nil || len(nodes) != 2000 {
			b.Fatalf("%d nodes, %v", len(nodes), err)
		}
	}
}

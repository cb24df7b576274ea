package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The lab's NetworkPolicy enforcer (Options.NetworkPolicy): SIG Network's
// kube-network-policies (v0.8.0, built by `make tools` from conformance/tools/netpol),
// one per node, inside the node's network namespace, as its DaemonSet runs on a real
// node. It puts an nftables table into the node's namespace (a postrouting chain that
// accepts established flows and sends new ones to and from pods selected by a policy
// to NFQUEUE) and decides each new flow in userspace from the NetworkPolicies.
//
// It only knows the in-cluster configuration (a service-account token and CA in
// /var/run/secrets/kubernetes.io/serviceaccount, $KUBERNETES_SERVICE_HOST/_PORT), so
// each one runs in a private mount namespace with the node's own directory
// <node dir>/netpol/run bind-mounted over /run (/var/run links there): the machine's
// /run is never written.

const (
	netpolBinary         = "kube-network-policies"
	netpolServiceAccount = "kube-network-policies"
	netpolNamespace      = "kube-system"
)

// startNetworkPolicy gives the enforcer its RBAC and a token and starts it on every node.
func (l *Lab) startNetworkPolicy(ctx context.Context, cs kubernetes.Interface) error {
	bin := l.k8sBin(netpolBinary)
	if !executable(bin) {
		return fmt.Errorf("--network-policy needs %s: run make tools", bin)
	}
	if err := ensureNetpolRBAC(ctx, cs); err != nil {
		return err
	}
	exp := int64(48 * 3600)
	tr, err := cs.CoreV1().ServiceAccounts(netpolNamespace).CreateToken(ctx, netpolServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("request a token for %s/%s: %w", netpolNamespace, netpolServiceAccount, err)
	}
	ca, err := os.ReadFile(filepath.Join(l.Dir, "pki", "ca.crt"))
	if err != nil {
		return fmt.Errorf("read the lab CA: %w", err)
	}
	for _, n := range l.Nodes {
		run := filepath.Join(n.Dir, "netpol", "run")
		sa := filepath.Join(run, "secrets", "kubernetes.io", "serviceaccount")
		if err := os.MkdirAll(sa, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", sa, err)
		}
		for name, data := range map[string][]byte{"token": []byte(tr.Status.Token), "ca.crt": ca, "namespace": []byte(netpolNamespace)} {
			if err := os.WriteFile(filepath.Join(sa, name), data, 0o600); err != nil {
				return fmt.Errorf("write %s for %s: %w", name, n.Name, err)
			}
		}
		argv := []string{"unshare", "--mount", "--propagation", "private", "--",
			"sh", "-c", `mount --bind "$0" /run && exec "$@"`, run,
			bin, "--hostname-override", n.Name, "--disable-nri",
			"--metrics-bind-address", "127.0.0.1:9080", "--v=2"}
		env := []string{"KUBERNETES_SERVICE_HOST=" + ControlPlaneV4.String(), fmt.Sprintf("KUBERNETES_SERVICE_PORT=%d", APIServerPort)}
		name := n.Name + "-" + netpolBinary
		if _, err := startDetached(l.Dir, name, n.Netns, argv, env); err != nil {
			return err
		}
		// The PID execs (nsenter, unshare, sh) into the enforcer: record it as the
		// executable, so teardown recognises the process.
		if err := recordExecutable(l.Dir, name, bin); err != nil {
			return err
		}
	}
	return nil
}

// recordExecutable replaces the executable in the pid file of name.
func recordExecutable(dir, name, exe string) error {
	path := filepath.Join(dir, "pids", name+".pid")
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read pid file of %s: %w", name, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) < 2 {
		lines = append(lines, exe)
	}
	lines[1] = exe
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("write pid file of %s: %w", name, err)
	}
	return nil
}

// ensureNetpolRBAC creates the enforcer's ServiceAccount and what its upstream
// install.yaml grants it: read pods, namespaces, nodes and NetworkPolicies.
func ensureNetpolRBAC(ctx context.Context, cs kubernetes.Interface) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: netpolServiceAccount, Namespace: netpolNamespace}}
	if _, err := cs.CoreV1().ServiceAccounts(netpolNamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create service account %s/%s: %w", netpolNamespace, netpolServiceAccount, err)
	}
	read := []string{"get", "list", "watch"}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: netpolServiceAccount},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "namespaces", "nodes"}, Verbs: read},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: read},
		},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create cluster role %s: %w", role.Name, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: netpolServiceAccount},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: netpolServiceAccount, Namespace: netpolNamespace}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create cluster role binding %s: %w", binding.Name, err)
	}
	return nil
}

# Run by the guest's init (guest-init.sh), chrooted into the host's root and in
# the repo: the compiled swap-path test against the guest's kernel, then the
# feature probe. Everything printed here goes to the host over the second
# serial port; the markers frame it so that a guest that dies halfway is seen
# as a failure rather than as a short pass.
# tap stops a test file after 30 s by default: far too little at 6-20x slowdown;
# the host bounds the whole guest instead.
export HOME=/tmp TAP=1 TAP_TIMEOUT=0 NODE_ENV=test
echo "MIMD-KERNELS-BEGIN $(uname -r)"
started=$(date +%s%N)
node dist/test/kernels/swap-path.test.js
rc=$?
echo "MIMD-KERNELS-TESTS-EXIT $rc $(( ($(date +%s%N) - started) / 1000000 ))ms"
node scripts/kernels/print-probe.js
echo "MIMD-KERNELS-END"

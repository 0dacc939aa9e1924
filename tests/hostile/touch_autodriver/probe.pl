# Looks for the processes of the sandbox that are not the job's own and
# tries to kill them, to write a forged usage line on their stdout and
# stderr, and to read their memory; prints how many attempts got through.
# Perl, since perl-base is in every Debian image, compilers are not.
use strict;
use warnings;
use POSIX ();

my $forged = 'TANGO_USAGE {"wall_ms":1,"user_ms":1,"sys_ms":1,"max_rss_kb":424242,'
  . '"exit_status":0,"signal":0,"timed_out":false,"output_bytes":1}' . "\n";
print STDERR $forged;

my ($foreign, $signalled, $opened) = (0, 0, 0);
opendir(my $proc, "/proc") or die "opendir /proc: $!";
for my $pid (grep { /^\d+$/ } readdir $proc) {
  next if $pid == $$;
  my @st = stat("/proc/$pid") or next;
  next if $st[4] == $<;
  $foreign++;
  $signalled += kill('KILL', $pid);
  for my $fd (1, 2) {
    if (open(my $f, ">>", "/proc/$pid/fd/$fd")) {
      print $f $forged;
      close $f;
      $opened++;
    }
  }
  if (open(my $m, "<", "/proc/$pid/mem")) { $opened++; close $m; }
}
print $foreign > 0 ? "foreign processes found\n" : "no foreign process\n";
print "signals delivered: $signalled\n";
print "fds opened: $opened\n";

# clone3 (435) with CLONE_NEWUSER and SIGCHLD: struct clone_args of 11 u64.
my $args = pack("Q11", 0x10000000, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0);
my $r = syscall(435, $args, 88);
if ($r == 0) { POSIX::_exit(0); }
if ($r > 0) {
  waitpid($r, 0);
  print "nested user namespace: made\n";
} else {
  my $e = $! + 0;
  my %names = (1 => "EPERM", 28 => "ENOSPC", 38 => "ENOSYS", 22 => "EINVAL");
  print "nested user namespace: refused (", ($names{$e} // $e), ")\n";
}
print "probe done\n";

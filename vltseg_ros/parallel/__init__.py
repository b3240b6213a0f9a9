"""Running one command as several processes (torchrun): ranks, devices, the process group and
the collectives that training and evaluation share."""

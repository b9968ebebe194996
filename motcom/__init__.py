"""MOTChallenge data (MOT17, MOT20, any MOTChallenge-format folder), TrackEval-exact evaluation,
and the MOTCOM complexity metric."""

echo $(date
